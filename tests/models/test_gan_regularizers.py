"""DiffAugment, R1 and LeCam: shapes, exact values on hand-made inputs, gradients that flow."""

from __future__ import annotations

import pytest
import torch

from models.gan.augment import color, cutout, diff_augment, translation
from models.gan.regularizers import LeCam, r1_penalty


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img moved by (dy, dx) with zeros coming in (out[i, j] = img[i + dy, j + dx])."""
    h, w = img.shape
    out = torch.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[i, j] = img[i + dy, j + dx]
    return out


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_padding():
    x = torch.arange(1.0, 1 + 8 * 8).reshape(1, 1, 8, 8).repeat(32, 1, 1, 1)
    out = translation(x, _gen())
    assert out.shape == x.shape
    seen = set()
    for img in out[:, 0]:
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if torch.equal(img, _shifted(x[0, 0], dy, dx))]
        assert len(matches) == 1  # ratio 1/8 of 8 pixels: a shift of at most one pixel per axis
        seen.add(matches[0])
    assert len(seen) > 3  # drawn per sample


def test_cutout_zeroes_a_square_of_half_the_side_inside_the_image():
    x = torch.ones(200, 2, 8, 8)
    out = cutout(x, _gen(1))
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert (zeros <= 16).all() and (zeros > 0).all() and (zeros == 16).any()  # 4×4, clipped at borders
    assert torch.equal(out[:, 0] == 0, out[:, 1] == 0)  # the same square in every channel


def test_color_on_a_grey_image_is_brightness_then_contrast_of_a_constant():
    x = torch.full((50, 1, 4, 4), 0.2)
    out = color(x, _gen(2))
    # a constant image has no saturation or contrast to scale: only the brightness shift survives
    shift = out[:, 0, 0, 0] - 0.2
    assert torch.allclose(out, (0.2 + shift)[:, None, None, None].expand_as(out))
    assert (shift.abs() <= 0.5).all() and shift.std() > 0.1


def test_diff_augment_is_differentiable_and_empty_policy_is_identity():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = diff_augment(x, ["color", "translation", "cutout"], _gen(3))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(diff_augment(x, []), x)


def test_r1_of_a_linear_critic_is_half_gamma_times_the_weight_norm_squared():
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(10, 2, requires_grad=True)
    logits = x @ w
    assert r1_penalty(logits, x, gamma=2.0).item() == pytest.approx(25.0)  # γ/2 · ‖w‖² = 1 · 25


def test_lecam_penalises_only_outputs_past_the_other_sides_average():
    lecam = LeCam(decay=0.5)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    # first call: EMAs start at the batch means (real 2, fake -0.5)
    got = lecam.penalty(real, fake)
    expected = ((real + 0.5).clamp(min=0) ** 2).mean() + ((2.0 - fake).clamp(min=0) ** 2).mean()
    assert got.item() == pytest.approx(expected.item())
    lecam.penalty(torch.tensor([4.0]), torch.tensor([0.5]))
    assert lecam.ema_real.item() == pytest.approx(3.0) and lecam.ema_fake.item() == pytest.approx(0.0)
