"""Process capability against a tolerance, with its uncertainty; TG-218 limits.

Pure numbers, no I/O (re-exported by :mod:`agent.qa.spc`). Formulas: TG-218
(Miften et al. 2018) and Montgomery, Introduction to Statistical Quality
Control, 7th ed., ch. 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Capability:
    """Process capability indices against specification limits."""

    cp: float | None
    cpk: float | None
    cpm: float | None
    lsl: float | None
    usl: float | None
    target: float


def capability(
    mean: float,
    sigma: float,
    lsl: float | None,
    usl: float | None,
    target: float,
) -> Capability:
    """Cp, Cpk and Cpm (TG-218, Miften et al. 2018).

    Cp = (USL - LSL)/(6 sigma); Cpk = min(USL - mu, mu - LSL)/(3 sigma);
    Cpm = (USL - LSL)/(6 sqrt(sigma^2 + (mu - T)^2)). With a one-sided
    specification only Cpk (its one side) is defined.
    """
    if sigma <= 0:
        return Capability(None, None, None, lsl, usl, target)
    sides = []
    if usl is not None:
        sides.append((usl - mean) / (3 * sigma))
    if lsl is not None:
        sides.append((mean - lsl) / (3 * sigma))
    cpk = min(sides) if sides else None
    if usl is not None and lsl is not None:
        cp = (usl - lsl) / (6 * sigma)
        cpm = (usl - lsl) / (6 * np.sqrt(sigma**2 + (mean - target) ** 2))
    else:
        cp = cpm = None
    return Capability(
        cp=None if cp is None else float(cp),
        cpk=None if cpk is None else float(cpk),
        cpm=None if cpm is None else float(cpm),
        lsl=lsl,
        usl=usl,
        target=target,
    )


def _chi2_quantile(q: float, df: float) -> float:
    """The chi-square quantile (= ``scipy.stats.chi2.ppf``, through the
    incomplete gamma function directly: a fleet asks for it per series)."""
    from scipy import special  # here: its import is 0.2 s of every start-up

    return 2.0 * float(special.gammaincinv(df / 2.0, q))


@dataclass(frozen=True)
class CapabilityInterval:
    """Confidence intervals of the capability indices and what they allow."""

    cp: tuple[float, float] | None
    cpk: tuple[float, float] | None
    cpm: tuple[float, float] | None
    verdict: str  # "capable", "not capable" or "undetermined"


def capability_interval(c: Capability, n: int, mean: float, sigma: float,
                        confidence: float = 0.95,
                        required: float = 1.0) -> CapabilityInterval:
    """Confidence intervals of Cp, Cpk and Cpm, and the reading they allow.

    Cp: the chi-square interval, Cp sqrt(chi2(a/2, n-1)/(n-1)) to
    Cp sqrt(chi2(1-a/2, n-1)/(n-1)) (Montgomery, Introduction to Statistical
    Quality Control, 7th ed., eq. 8.19). Cpk: Bissell's normal approximation
    (1990), Cpk (1 -+ z sqrt(1/(9 n Cpk^2) + 1/(2(n-1)))) (eq. 8.21). Cpm:
    Boyles (1991), the chi-square interval with nu = n (1 + xi^2)^2 /
    (1 + 2 xi^2) degrees of freedom, xi = (mean - target)/sigma (eq. 8.24).
    With sigma from the moving range these are approximations: the baseline
    points are used as if they were independent.

    The reading: ``capable`` when the interval of Cpk lies above ``required``,
    ``not capable`` when it lies below, ``undetermined`` when it straddles it
    (a 30-point baseline often cannot tell).
    """
    alpha = 1.0 - confidence
    if c.cpk is None or n < 3:
        return CapabilityInterval(None, None, None, "undetermined")
    df = n - 1
    lo_q, hi_q = _chi2_quantile(alpha / 2, df), _chi2_quantile(1 - alpha / 2, df)
    cp = None if c.cp is None else (c.cp * float(np.sqrt(lo_q / df)),
                                    c.cp * float(np.sqrt(hi_q / df)))
    from scipy import special

    z = float(special.ndtri(1 - alpha / 2))
    if c.cpk > 0:
        half = z * float(np.sqrt(1 / (9 * n * c.cpk**2) + 1 / (2 * df)))
        cpk = (c.cpk * (1 - half), c.cpk * (1 + half))
    else:
        half = z * float(np.sqrt(1 / (9 * n) + c.cpk**2 / (2 * df)))
        cpk = (c.cpk - half, c.cpk + half)
    cpm = None
    if c.cpm is not None and sigma > 0:
        xi = (mean - c.target) / sigma
        nu = n * (1 + xi**2) ** 2 / (1 + 2 * xi**2)
        cpm = (c.cpm * float(np.sqrt(_chi2_quantile(alpha / 2, nu) / nu)),
               c.cpm * float(np.sqrt(_chi2_quantile(1 - alpha / 2, nu) / nu)))
    verdict = ("capable" if cpk[0] >= required else
               "not capable" if cpk[1] < required else "undetermined")
    return CapabilityInterval(cp, cpk, cpm, verdict)


def tg218_action_limits(
    mean: float, sigma: float, target: float, beta: float = 6.0
) -> tuple[float, float, float]:
    """TG-218 action limits: dA = beta sqrt(sigma^2 + (mean - T)^2).

    Returns
    -------
    (lower, upper, dA)
        T - dA/2, T + dA/2 and the action interval width dA.
    """
    width = beta * float(np.sqrt(sigma**2 + (mean - target) ** 2))
    return target - width / 2, target + width / 2, width
