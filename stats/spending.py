"""Alpha spending over the information fraction: how much of alpha a design may have used by each look.

Lan and DeMets, "Discrete sequential boundaries for clinical trials" (Biometrika 70(3), 1983, eq. 1-2):
a spending function alpha(t), increasing from alpha(0) = 0 to alpha(1) = alpha, fixes how much of
the type I error may be spent by the information fraction t, whatever the number and timing of the
looks. Their O'Brien-Fleming-like function, alpha_1(t) = 2 - 2 Phi(z_{1 - a/2} / sqrt(t)) for a
one-sided level a, spent on each side of a symmetric two-sided test at a = alpha / 2 (the convention
of Jennison and Turnbull 2000, section 7.2, and of gsDesign's sfLDOF), gives the two-sided

    alpha(t) = 4 - 4 Phi( z_{1 - alpha/4} / sqrt(t) ),     0 < t <= 1.

It spends almost nothing early (1.1e-6 by t = 0.2 at alpha = 0.05) and nearly the full alpha at
the planned reach, which is what keeps the power of a design close to the fixed horizon's.
"""

from __future__ import annotations

import math

from scipy import special


def obrien_fleming(t: float, alpha: float) -> float:
    """The cumulative two-sided alpha spent by the information fraction t (alpha itself from t = 1 on)."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    z = float(-special.ndtri(alpha / 4))
    return float(4 * special.ndtr(-z / math.sqrt(t)))
