"""Continual-learning metrics over the accuracy matrix R.

R[i][j] is the accuracy (0-1) on task j after training tasks 0..i, so R is lower-triangular:
entries with j > i are undefined (None). T is the number of rows. Formulas follow
shared/specs/metrics-and-users.md §C1 (GEM / Mammoth conventions); each function's docstring is the
formula shown to users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Matrix = Sequence[Sequence[float | None]]


def _check(R: Matrix) -> int:
    T = len(R)
    for i, row in enumerate(R):
        for j in range(i + 1):
            if j >= len(row) or row[j] is None:
                raise ValueError(f"R[{i}][{j}] is undefined; R must be filled on and below the diagonal")
    return T


def acc(R: Matrix) -> float | None:
    """ACC = (1/T) Σ_j R[T-1][j] — mean accuracy over all tasks after the last one (GEM 2017)."""
    T = _check(R)
    if T == 0:
        return None
    return sum(R[T - 1][j] for j in range(T)) / T  # type: ignore[misc]


def aia(R: Matrix) -> float | None:
    """AIA = (1/T) Σ_i [ (1/(i+1)) Σ_{j≤i} R[i][j] ] — average incremental accuracy (iCaRL 2017)."""
    T = _check(R)
    if T == 0:
        return None
    return sum(sum(R[i][j] for j in range(i + 1)) / (i + 1) for i in range(T)) / T  # type: ignore[misc]


def bwt(R: Matrix) -> float | None:
    """BWT = (1/(T-1)) Σ_{j<T-1} (R[T-1][j] − R[j][j]) — backward transfer; negative means forgetting
    (GEM 2017). Undefined for T < 2."""
    T = _check(R)
    if T < 2:
        return None
    return sum(R[T - 1][j] - R[j][j] for j in range(T - 1)) / (T - 1)  # type: ignore[operator,misc]


def fwt(R: Matrix, b: Sequence[float | None]) -> float | None:
    """FWT = (1/(T-1)) Σ_{j≥1} (R[j-1][j] − b_j) — forward transfer (GEM 2017). Needs R[j-1][j]
    (accuracy on task j before learning it) and b_j (an untrained model's accuracy). Undefined when
    any of them is missing, which is always the case for per-task-head methods like CLR, whose task j
    has no head before it is learned."""
    T = len(R)
    if T < 2 or len(b) < T:
        return None
    terms = []
    for j in range(1, T):
        before = R[j - 1][j] if j < len(R[j - 1]) else None
        if before is None or b[j] is None:
            return None
        terms.append(before - b[j])  # type: ignore[operator]
    return sum(terms) / (T - 1)


def forgetting(R: Matrix) -> float | None:
    """F = (1/(T-1)) Σ_{j<T-1} ( max_{l∈[j,T-2]} R[l][j] − R[T-1][j] ) — average forgetting
    (Chaudhry et al. 2018). Zero means nothing was forgotten. Undefined for T < 2."""
    T = _check(R)
    if T < 2:
        return None
    return sum(max(R[k][j] for k in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)) / (T - 1)  # type: ignore[type-var,operator,misc]


FORMULAS = {
    "ACC": acc.__doc__,
    "AIA": aia.__doc__,
    "BWT": bwt.__doc__,
    "FWT": fwt.__doc__,
    "forgetting": forgetting.__doc__,
}


def square(R: Matrix) -> list[list[float | None]]:
    """The stored lower-triangular rows as a T×T matrix, None above the diagonal (for printing and plots)."""
    return [list(row) + [None] * (len(R) - len(row)) for row in R]


def summary(R: Matrix, b: Sequence[float | None] | None = None) -> dict[str, float | None]:
    """ACC, AIA, BWT, forgetting, and FWT only where the accuracy on each task before training it exists
    (``b`` and R[j-1][j]): no strategy here has it (each task's classes get their head when it trains), so
    FWT is left out rather than shown as an empty number."""
    out = {"ACC": acc(R), "AIA": aia(R), "BWT": bwt(R), "forgetting": forgetting(R)}
    if b is not None:
        out["FWT"] = fwt(R, b)
    return out


def near_chance(accuracy: float, classes: int, images: int) -> bool:
    """Within two standard errors of guessing: accuracy < 1/C + 2·√((1/C)(1 − 1/C)/n), for C classes and n
    evaluation images. Such an accuracy says nothing the model learned."""
    if classes < 2 or images < 1:
        return True
    p = 1.0 / classes
    return accuracy < p + 2.0 * (p * (1.0 - p) / images) ** 0.5


SIGNIFICANT_Z = 1.96  # two-sided 5 %: the usual bar, and high enough that validation noise rarely clears it


def clearly_better(wins: int, losses: int, z: float = SIGNIFICANT_Z) -> bool:
    """Whether model A beats model B on the same images by more than chance (a sign test in its normal
    form, McNemar's): ``wins`` images only A gets right, ``losses`` only B does; the images both get right
    or both miss say nothing about which is better."""
    discordant = wins + losses
    return discordant > 0 and (wins - losses) / math.sqrt(discordant) > z
