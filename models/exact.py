"""How far exact enumeration goes, in one place for every Boltzmann family.

Enumerating 2ⁿ binary states in float64 chunks takes seconds up to n ≈ 20 and minutes at 25 on
one CPU core, so the models refuse more than :data:`MAX_ENUMERATED_UNITS`, and the recipes choose
the exact answer over AIS (``method=auto``) and train the fully visible BM exactly up to
:data:`AUTO_EXACT_UNITS`:

- fully visible BM: all n visible units;
- RBM (Bernoulli or Gaussian visible): the smaller layer (Gaussian visible: the hidden layer);
- DBN: the smaller layer of the top RBM (its log Z); exact log p(v) of two hidden layers also sums
  h1 out, up to :data:`DBN_EXACT_H1_UNITS` units;
- DBM: the odd layers together (the even ones are summed out analytically).
"""

from __future__ import annotations

MAX_ENUMERATED_UNITS = 25
AUTO_EXACT_UNITS = 20
DBN_EXACT_H1_UNITS = 16


def can_enumerate(units: int, limit: int = AUTO_EXACT_UNITS) -> bool:
    """True when ``units`` binary units are few enough to enumerate (``limit`` by default 20)."""
    return units <= limit


def check_enumerable(units: int, limit: int = MAX_ENUMERATED_UNITS) -> None:
    """ValueError when enumerating ``units`` binary units is infeasible here."""
    if units > limit:
        raise ValueError(f"exact enumeration over {units} units is infeasible (limit {limit}); use AIS")
