"""Exact yardsticks for 2-D energies: normalise exp(−E) by quadrature on a grid.

For a 2-D energy E the model density on a box B is p(x) = exp(−E(x))/Z_B with
Z_B = ∫_B exp(−E(x)) dx, which the midpoint rule on an n×n grid computes as
log Z_B ≈ logsumexp(−E(grid)) + log(cell area). The midpoint rule converges geometrically fast for
smooth integrands that decay inside the box (Trefethen & Weideman 2014), so log Z at n and at n/2
agree to many digits once the cell is small against the density's features; their difference is
reported as the quadrature error estimate. With Z_B, test log-likelihoods −E(x) − log Z_B are
exact up to that error; mass outside the box is outside the model by definition (an EBM's exp(−E)
need not even be integrable on all of R²), so the box must cover the data with a margin.

Expectations under the data distribution (KL(p_data ‖ p_model) for the Gaussian-mixture toys) use
Gauss–Hermite quadrature per mixture component instead (:func:`models.toys.mixtures.expectation`):
a grid fine enough to resolve σ = 0.01 would cost 10⁶ energy evaluations per unit area.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Energy = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle [x0, x1] × [y0, y1]."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def covering(cls, lo: float, hi: float, margin: float = 0.25) -> Box:
        """The square [lo, hi]² grown by ``margin``·(hi − lo) on every side."""
        pad = margin * (hi - lo)
        return cls(lo - pad, hi + pad, lo - pad, hi + pad)

    def contains(self, x: Tensor) -> Tensor:
        return (x[:, 0] >= self.x0) & (x[:, 0] <= self.x1) & (x[:, 1] >= self.y0) & (x[:, 1] <= self.y1)


@dataclass
class GridDensity:
    """exp(−E)/Z_B on the cell centres of an n×n grid: ``log_p[i, j]`` at (xs[j], ys[i])."""

    box: Box
    xs: Tensor
    ys: Tensor
    log_p: Tensor  # (n, n) float64, normalised: logsumexp(log_p) + log(cell) = 0
    log_z: float
    log_z_coarse: float  # the same integral on the n/2 grid

    @property
    def quadrature_error(self) -> float:
        """|log Z(n) − log Z(n/2)|: an upper estimate of the error of ``log_z``."""
        return abs(self.log_z - self.log_z_coarse)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact draws from the piecewise-constant grid density (a cell by its mass, then uniform in it)."""
        flat = self.log_p.flatten()
        idx = torch.multinomial((flat - flat.max()).exp(), n, replacement=True, generator=generator)
        i, j = idx // len(self.xs), idx % len(self.xs)
        dx, dy = float(self.xs[1] - self.xs[0]), float(self.ys[1] - self.ys[0])
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
        return torch.stack([self.xs[j] + u[:, 0] * dx, self.ys[i] + u[:, 1] * dy], 1)


def _centres(lo: float, hi: float, n: int) -> Tensor:
    h = (hi - lo) / n
    return lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)


@torch.no_grad()
def energy_on_grid(energy: Energy, box: Box, n: int, chunk: int = 65536) -> tuple[Tensor, Tensor, Tensor]:
    """(xs, ys, E) with E[i, j] = E((xs[j], ys[i])) in float64, evaluated in chunks."""
    xs, ys = _centres(box.x0, box.x1, n), _centres(box.y0, box.y1, n)
    pts = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1).reshape(-1, 2)
    dtype = _dtype_of(energy)
    e = torch.cat([energy(p.to(dtype)).double() for p in pts.split(chunk)])
    return xs, ys, e.reshape(n, n)


def _dtype_of(energy: Energy) -> torch.dtype:
    params = getattr(energy, "parameters", None)
    p = next(params(), None) if params is not None else None
    return p.dtype if p is not None else torch.float64


def _log_z(e: Tensor, box: Box, n: int) -> float:
    cell = (box.x1 - box.x0) * (box.y1 - box.y0) / n**2
    return float(torch.logsumexp(-e.flatten(), 0)) + math.log(cell)


def grid_density(energy: Energy, box: Box, n: int = 512) -> GridDensity:
    """log Z_B of exp(−E) on ``box`` by the midpoint rule on n×n cells, checked against n/2 cells."""
    if n < 4 or n % 2:
        raise ValueError(f"grid_density: n={n} must be an even number ≥ 4")
    xs, ys, e = energy_on_grid(energy, box, n)
    log_z = _log_z(e, box, n)
    if not math.isfinite(log_z):
        raise ValueError(f"grid_density: log Z = {log_z} on {box} (the energy is not finite on the grid)")
    _, _, e_coarse = energy_on_grid(energy, box, n // 2)
    return GridDensity(box, xs, ys, -e - log_z, log_z, _log_z(e_coarse, box, n // 2))


@torch.no_grad()
def log_likelihood(energy: Energy, x: Tensor, grid: GridDensity) -> Tensor:
    """Exact log p(x) = −E(x) − log Z_B per point (−inf outside the box)."""
    x = x.reshape(-1, 2)
    out = -energy(x.to(_dtype_of(energy))).double() - grid.log_z
    return torch.where(grid.box.contains(x), out, torch.full_like(out, -math.inf))


def kl_data_model(toy: str, energy: Energy, grid: GridDensity, order: int = 20) -> float:
    """KL(p_data ‖ p_model) = E_data[log p_data − log p_model] for the Gaussian-mixture toy ``toy``,
    by Gauss–Hermite quadrature per mode (log p_model from the grid's log Z); inf when data mass
    falls outside the box."""
    from models.toys.mixtures import expectation, log_density

    return float(expectation(toy, lambda x: log_density(toy, x) - log_likelihood(energy, x, grid), order))
