"""GAN networks sized from the data: MLPs (toys, 8×8 digits) and DCGAN (Radford et al. 2015).

Discriminators return one logit (or critic value) per example. Spectral normalisation (Miyato et
al. 2018) is a switch on every discriminator layer. Batch norm in the DCGAN discriminator (as in
Radford et al. 2015) is a switch too, off by default: batch statistics couple the examples of a
forward pass, which breaks per-example gradient penalties and means real and fake examples must
go through D in separate forwards (the recipe does so when it is on).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn(layer: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(layer) if on else layer


class MLPGenerator(nn.Module):
    """z → ``layers`` ReLU layers of width ``hidden`` → data; tanh when the data range is bounded."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...], hidden: int = 128, layers: int = 3,
                 bounded: bool = True):
        super().__init__()
        self.shape = tuple(shape)
        dims = [latent_dim] + [hidden] * layers
        body = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.ReLU()]
        body.append(nn.Linear(hidden, math.prod(shape)))
        if bounded:
            body.append(nn.Tanh())
        self.net = nn.Sequential(*body)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """Returns one logit per example."""

    def __init__(self, shape: tuple[int, ...], hidden: int = 128, layers: int = 3, spectral: bool = False):
        super().__init__()
        dims = [math.prod(shape)] + [hidden] * layers
        body = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [_sn(nn.Linear(a, b), spectral), nn.LeakyReLU(0.2)]
        body.append(_sn(nn.Linear(hidden, 1), spectral))
        self.net = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


class DCGANGenerator(nn.Module):
    """z → (4w, H/4, W/4) → two stride-2 transposed convs → tanh image (Radford et al. 2015: batch
    norm and ReLU in G, tanh output), for sides divisible by 4: 8×8, 28×28, 32×32, 1 or 3 channels."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], width: int = 64):
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"DCGAN needs image sides divisible by 4, got {h}×{w}; use model.net=mlp")
        self.start = (width * 4, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start)), nn.BatchNorm1d(math.prod(self.start)),
                                nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1), nn.BatchNorm2d(width * 2), nn.ReLU(),
            nn.ConvTranspose2d(width * 2, c, 4, 2, 1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).reshape(z.shape[0], *self.start))


class DCGANDiscriminator(nn.Module):
    """Strided convs with LeakyReLU → one logit; batch norm after the second conv when asked
    (Radford et al. 2015; not with gradient penalties)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 64, spectral: bool = False,
                 batch_norm: bool = False):
        super().__init__()
        c, h, w = shape
        norm = [nn.BatchNorm2d(width * 2)] if batch_norm else []
        self.net = nn.Sequential(
            _sn(nn.Conv2d(c, width, 4, 2, 1), spectral), nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(width, width * 2, 4, 2, 1), spectral), *norm, nn.LeakyReLU(0.2),
            nn.Flatten(), _sn(nn.Linear(width * 2 * (h // 4) * (w // 4), 1), spectral))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """Radford et al. (2015) §4: weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            weight.normal_(0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()


def build_networks(net: str, latent_dim: int, shape: tuple[int, ...], hidden: int, layers: int,
                   spectral: bool, bounded: bool, d_batch_norm: bool = False) -> tuple[nn.Module, nn.Module]:
    """(G, D) for ``net`` = mlp | dcgan, sized from the data ``shape`` ((2,) toys or (C, H, W))."""
    if d_batch_norm and net != "dcgan":
        raise ValueError("model.d_batch_norm=true needs model.net=dcgan (the MLP discriminator has no batch norm)")
    if net == "dcgan":
        if len(shape) != 3:
            raise ValueError(f"model.net=dcgan needs image data (C, H, W), got shape {shape}; use model.net=mlp")
        G, D = DCGANGenerator(latent_dim, shape, hidden), DCGANDiscriminator(shape, hidden, spectral, d_batch_norm)
        dcgan_init(G)
        dcgan_init(D)
        return G, D
    if net != "mlp":
        raise ValueError(f"model.net={net!r} is not one of mlp, dcgan")
    return (MLPGenerator(latent_dim, shape, hidden, layers, bounded),
            MLPDiscriminator(shape, hidden, layers, spectral))


def sample_latent(n: int, dim: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """z ~ N(0, I), drawn on the generator's device and moved to ``device``."""
    z = torch.randn(n, dim, generator=generator, device=generator.device if generator is not None else device)
    return z if device is None else z.to(device)
