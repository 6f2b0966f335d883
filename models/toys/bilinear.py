"""The bilinear game min_x max_y f(x, y) = x·y: the simplest instability of GAN training.

With the simultaneous-gradient field F(z) = (∂f/∂x, −∂f/∂y) = (y, −x) and step η:

* simultaneous gradient descent–ascent z ← z − ηF(z) multiplies ‖z‖ by √(1 + η²) every step
  (diverges);
* alternating updates (x first, then y with the new x) preserve Q(x, y) = x² − ηxy + y² exactly
  (:func:`alternating_invariant`), so for η < 2 the iterates cycle on an ellipse: the norm stays
  within √((1 + η/2)/(1 − η/2)) of where it started, never growing nor converging;
* extragradient z ← z − ηF(z − ηF(z)) contracts ‖z‖ by √(1 − η² + η⁴) per step;
* optimistic GD z ← z − 2ηF(z_t) + ηF(z_{t−1}) converges for small η (rate: the spectral radius
  of its 4×4 companion matrix, :func:`optimistic_rate`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)  # F(z) = A z


def field(z: Tensor) -> Tensor:
    return A @ z


def simultaneous(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        zs.append(zs[-1] - eta * field(zs[-1]))
    return torch.stack(zs)


def alternating(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        x, y = zs[-1]
        x = x - eta * y
        y = y + eta * x
        zs.append(torch.stack([x, y]))
    return torch.stack(zs)


def extragradient(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double()]
    for _ in range(steps):
        half = zs[-1] - eta * field(zs[-1])
        zs.append(zs[-1] - eta * field(half))
    return torch.stack(zs)


def optimistic(z0: Tensor, eta: float, steps: int) -> Tensor:
    zs = [z0.double(), z0.double() - eta * field(z0.double())]
    for _ in range(steps - 1):
        zs.append(zs[-1] - 2 * eta * field(zs[-1]) + eta * field(zs[-2]))
    return torch.stack(zs)


DYNAMICS = {"simultaneous": simultaneous, "alternating": alternating, "extragradient": extragradient,
            "optimistic": optimistic}


def simultaneous_rate(eta: float) -> float:
    """‖(I − ηA)z‖ / ‖z‖ = √(1 + η²) for every z, because A is skew-symmetric."""
    return math.sqrt(1 + eta**2)


def extragradient_rate(eta: float) -> float:
    """(I − ηA + η²A²) = (1 − η²)I − ηA, whose gain is √((1 − η²)² + η²) = √(1 − η² + η⁴)."""
    return math.sqrt(1 - eta**2 + eta**4)


def alternating_invariant(z: Tensor, eta: float) -> Tensor:
    """Q(x, y) = x² − ηxy + y², conserved exactly by :func:`alternating` (z may be (T, 2))."""
    x, y = z[..., 0], z[..., 1]
    return x**2 - eta * x * y + y**2


def optimistic_rate(eta: float) -> float:
    """Spectral radius of z_{t+1} = (I − 2ηA) z_t + ηA z_{t−1}."""
    eye = torch.eye(2, dtype=torch.float64)
    companion = torch.cat([torch.cat([eye - 2 * eta * A, eta * A], 1),
                           torch.cat([eye, torch.zeros(2, 2, dtype=torch.float64)], 1)])
    return float(torch.linalg.eigvals(companion).abs().max())


def plot_trajectories(eta: float = 0.1, steps: int = 200, z0: tuple[float, float] = (1.0, 1.0)):
    """A matplotlib Figure of the four dynamics' (x, y) paths from ``z0`` (saved by the caller).

    Uses ``matplotlib.figure.Figure`` directly (no pyplot global state, no file written here)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.8), layout="constrained")
    axes = fig.subplots(1, len(DYNAMICS))  # own scales: simultaneous GDA spirals far out
    start = torch.tensor(z0, dtype=torch.float64)
    for ax, (name, run) in zip(axes, DYNAMICS.items()):
        path = run(start, eta, steps).numpy()
        ax.plot(path[:, 0], path[:, 1], lw=0.8)
        ax.plot(*path[0], "go", ms=4, label="start")
        ax.plot(*path[-1], "rx", ms=6, label="end")
        ax.plot(0, 0, "k*", ms=8, label="equilibrium")
        ax.set_title(f"{name} (η={eta})", fontsize=9)
        ax.set_xlabel("x")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize=7, loc="lower left")
    return fig
