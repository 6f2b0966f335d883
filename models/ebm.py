"""Energy networks E(x; θ) for deep EBMs: ``forward(x)`` returns one energy per example."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn(layer: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(layer) if on else layer


def _act(name: str) -> nn.Module:
    return nn.SiLU() if name == "swish" else nn.LeakyReLU(0.2)


class MLPEnergy(nn.Module):
    """For low-dimensional data such as the 2-D mixtures."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3, activation: str = "swish",
                 spectral: bool = False):
        super().__init__()
        dims = [dim] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [_sn(nn.Linear(a, b), spectral), _act(activation)]
        body.append(_sn(nn.Linear(hidden, 1), spectral))
        self.net = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class ConvEnergy(nn.Module):
    """A small ConvNet (Nijkamp et al. 2019 style) for images of any size ≥ 8×8."""

    def __init__(self, channels: int, width: int = 64, activation: str = "swish", spectral: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            _sn(nn.Conv2d(channels, width, 3, 1, 1), spectral), _act(activation),
            _sn(nn.Conv2d(width, width * 2, 4, 2, 1), spectral), _act(activation),
            _sn(nn.Conv2d(width * 2, width * 2, 3, 1, 1), spectral), _act(activation),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), _sn(nn.Linear(width * 2, 1), spectral))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def build_energy(shape: tuple[int, ...], net: str, hidden: int, layers: int, activation: str,
                 spectral: bool) -> nn.Module:
    if net == "conv":
        if len(shape) != 3:
            raise ValueError(f"model.net=conv needs images (C, H, W), got {shape}; use model.net=mlp")
        return ConvEnergy(shape[0], hidden, activation, spectral)
    return MLPEnergy(math.prod(shape), hidden, layers, activation, spectral)
