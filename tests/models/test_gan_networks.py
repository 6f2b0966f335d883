"""Networks sized from the data shape; DCGAN init; spectral norm; the ancestral sampler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.gan.networks import DCGANGenerator, build_networks, sample_latent
from models.samplers.ancestral import AncestralSampler


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_dcgan_maps_latents_to_images_and_images_to_one_logit(shape):
    G, D = build_networks("dcgan", 16, shape, hidden=8, layers=3, spectral=False, bounded=True)
    x = G(sample_latent(5, 16, torch.Generator().manual_seed(0)))
    assert x.shape == (5, *shape) and x.abs().max() <= 1  # tanh output in [-1, 1]
    assert D(x).shape == (5,)


def test_mlp_networks_for_toys_are_unbounded():
    G, D = build_networks("mlp", 2, (2,), hidden=16, layers=2, spectral=False, bounded=False)
    assert not any(isinstance(m, nn.Tanh) for m in G.modules())
    assert G(torch.randn(7, 2)).shape == (7, 2) and D(torch.randn(7, 2)).shape == (7,)


def test_bad_shapes_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="divisible by 4.*model.net=mlp"):
        DCGANGenerator(8, (1, 30, 30))
    with pytest.raises(ValueError, match="needs image data"):
        build_networks("dcgan", 8, (2,), 8, 2, False, True)
    with pytest.raises(ValueError, match="model.net='resnet'"):
        build_networks("resnet", 8, (2,), 8, 2, False, True)


def test_dcgan_weights_start_as_radford_prescribes():
    G, D = build_networks("dcgan", 100, (1, 28, 28), hidden=64, layers=3, spectral=False, bounded=True)
    conv = [m.weight for m in list(G.modules()) + list(D.modules())
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    std = torch.cat([w.flatten() for w in conv]).std().item()
    assert std == pytest.approx(0.02, rel=0.05)
    bn = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and all(abs(m.weight.mean().item() - 1) < 0.01 for m in bn)


def test_spectral_norm_bounds_every_discriminator_layer():
    torch.manual_seed(0)
    _, D = build_networks("mlp", 2, (2,), hidden=32, layers=2, spectral=True, bounded=False)
    with torch.no_grad():
        for _ in range(50):  # power iterations run in training-mode forwards
            D(torch.randn(8, 2))
    D.eval()
    linears = [m for m in D.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for m in linears:
        assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1.0, abs=1e-3)


def test_ancestral_sampler_redraws_latents_from_the_passed_generator():
    G, _ = build_networks("mlp", 3, (2,), hidden=8, layers=1, spectral=False, bounded=False)
    s = AncestralSampler(3)
    a = s.init(G, 6, torch.Generator().manual_seed(5))
    b = s.init(G, 6, torch.Generator().manual_seed(5))
    assert torch.equal(a.layers[0], b.layers[0])
    assert torch.allclose(a.energy, 0.5 * (a.layers[0] ** 2).sum(1))
    gen = torch.Generator().manual_seed(5)
    first = s.init(G, 6, gen)
    second = s.step(G, first, 1, gen)
    assert not torch.equal(first.layers[0], second.layers[0])  # a fresh z, not the old one
    with torch.no_grad():
        assert torch.equal(s.to_data(G, second), G(second.layers[0]))
