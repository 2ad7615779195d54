"""The coronary model's code verification: known answers of its stenosis law and flow solver.

The model has no time or space discretisation: a vessel at hyperaemia is an algebraic
steady problem. Its numerics are checked against three known answers:

* :func:`poiseuille_limit` — the viscous term of the stenosis law is exactly the
  Hagen–Poiseuille drop of a tube of the stenosis diameter over the Seeley–Young effective
  length ``0.83 L_s + 1.64 D_s``, and for a long mild lesion the whole law tends to it (the
  convective term vanishes as the lesion becomes milder); over the geometric length the
  ratio tends to the coefficient 0.83.
* :func:`quadratic_check` — the Newton solver of the vessel's flow
  (:func:`models.coronary.stenosis.solve_flow`) against the closed-form root of the steady
  quadratic ``B Q² + A Q = ΔP`` for random arteries with up to four serial lesions: flow and
  FFR errors.
* :func:`newton_order` — the observed order of convergence of the Newton iterates against
  the closed-form root, against the formal order 2.

This module does not import ``credibility`` (packages do not import each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .stenosis import (
    D_COEFF,
    L_COEFF,
    lesion_coefficients,
    lesion_drop,
    poiseuille_drop,
    quadratic_flow,
    solve_flow,
)

__all__ = ["code_verification", "newton_order", "poiseuille_limit", "quadratic_check"]

#: (length mm, diameter stenosis %) of the long-mild-lesion sequence, 3 mm artery, 1 mL/s.
LIMIT_SEQUENCE = ((20.0, 20.0), (40.0, 10.0), (80.0, 5.0), (160.0, 2.5), (320.0, 1.25))


def poiseuille_limit(
    sequence: tuple[tuple[float, float], ...] = LIMIT_SEQUENCE,
    d0_mm: float = 3.0,
    q_ml_s: float = 1.0,
    viscosity_mpa_s: float = 3.5,
) -> dict[str, Any]:
    """The stenosis law against the Poiseuille pressure drop, for longer and milder lesions.

    Returns
    -------
    dict
        ``viscous_rel_error`` (largest |viscous term − Poiseuille over the effective length|
        / Poiseuille, expected at round-off), ``total_rel_error`` (per lesion: |whole law −
        Poiseuille over the effective length| / Poiseuille, decreasing to 0),
        ``geometric_ratio`` (viscous term / Poiseuille over the geometric length, tending to
        0.83) and the lesions (``length_mm``, ``ds_pct``).
    """
    lengths = np.array([s[0] for s in sequence])
    ds_pct = np.array([s[1] for s in sequence])
    d0 = np.full(lengths.shape, d0_mm)
    ds = d0 * (1.0 - ds_pct / 100.0)
    a, b = lesion_coefficients(d0, ds, lengths, viscosity_mpa_s=viscosity_mpa_s)
    effective = L_COEFF * lengths + D_COEFF * ds
    reference = poiseuille_drop(q_ml_s, ds, effective, viscosity_mpa_s=viscosity_mpa_s)
    viscous = a * q_ml_s
    total = lesion_drop(np.full(lengths.shape, q_ml_s), a, b)
    geometric = poiseuille_drop(q_ml_s, ds, lengths, viscosity_mpa_s=viscosity_mpa_s)
    return {
        "length_mm": lengths.tolist(),
        "ds_pct": ds_pct.tolist(),
        "viscous_rel_error": float(np.max(np.abs(viscous - reference) / reference)),
        "total_rel_error": (np.abs(total - reference) / reference).tolist(),
        "geometric_ratio": (viscous / geometric).tolist(),
    }


def _random_arteries(n: int, seed: int) -> dict[str, np.ndarray]:
    """Arteries with 1–4 serial lesions spanning the cohort's ranges (hyperaemia)."""
    rng = np.random.default_rng(seed)
    k = 4
    d0 = rng.uniform(2.0, 4.0, (n, k))
    ds_pct = rng.uniform(20.0, 95.0, (n, k))
    length = rng.uniform(3.0, 40.0, (n, k))
    a, b = lesion_coefficients(d0, d0 * (1.0 - ds_pct / 100.0), length)
    used = np.arange(k)[None, :] < rng.integers(1, k + 1, n)[:, None]
    dp = rng.uniform(50.0, 120.0, n)
    r = rng.lognormal(np.log(20.0), 0.6, n)
    return {"dp": dp, "r": r, "a": np.where(used, a, 0.0), "b": np.where(used, b, 0.0)}


def quadratic_check(n: int = 2000, seed: int = 20261126) -> dict[str, float]:
    """Newton solver against the closed-form root on ``n`` random arteries.

    Returns
    -------
    dict
        ``flow_max_rel_error``, ``ffr_max_abs_error`` (FFR = R·Q/ΔP, the distal pressure
        over the driving pressure) and ``unconverged`` (count).
    """
    case = _random_arteries(n, seed)
    q, converged = solve_flow(case["dp"], case["r"], case["a"], case["b"])
    exact = quadratic_flow(case["dp"], case["r"] + case["a"].sum(1), case["b"].sum(1))
    ffr = case["r"] * q / case["dp"]
    ffr_exact = case["r"] * exact / case["dp"]
    return {
        "cases": n,
        "flow_max_rel_error": float(np.max(np.abs(q - exact) / exact)),
        "ffr_max_abs_error": float(np.max(np.abs(ffr - ffr_exact))),
        "unconverged": int((~converged).sum()),
    }


def newton_order(n: int = 200, seed: int = 7, floor: float = 1e-11) -> dict[str, float]:
    """Observed order of convergence of the Newton iterates, ``p = log(e₊/e) / log(e/e₋)``.

    Errors are taken against the closed-form root; a triple of successive errors counts when
    all three lie between ``floor`` (above round-off) and 0.1 of the root (in the asymptotic
    range). The observed order is the median over the counted triples of every artery.
    """
    case = _random_arteries(n, seed)
    history: list[np.ndarray] = []
    solve_flow(case["dp"], case["r"], case["a"], case["b"], history=history)
    exact = quadratic_flow(case["dp"], case["r"] + case["a"].sum(1), case["b"].sum(1))
    errors = np.abs(np.array(history) - exact) / exact  # (iterations, n)
    e0, e1, e2 = errors[:-2], errors[1:-1], errors[2:]
    ok = (e0 < 0.1) & (e2 > floor) & (e1 > e2) & (e0 > e1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.log(e2 / e1) / np.log(e1 / e0)
    return {"observed_order": float(np.median(p[ok])), "triples": int(ok.sum())}


def code_verification() -> dict[str, Any]:
    """All checks, in the form the credibility stage reads (``formal_order``,
    ``observed_order``, ``order_error_abs`` and the named errors)."""
    limit = poiseuille_limit()
    quad = quadratic_check()
    order = newton_order()
    return {
        "test": "stenosis law against Hagen-Poiseuille (long mild lesions), Newton flow solver "
        "against the closed-form root of the steady quadratic (random arteries with 1-4 "
        "serial lesions) and its order of convergence",
        "formal_order": 2.0,
        "observed_order": order["observed_order"],
        "order_error_abs": abs(order["observed_order"] - 2.0),
        "order_triples": order["triples"],
        "flow_max_rel_error": quad["flow_max_rel_error"],
        "ffr_max_abs_error": quad["ffr_max_abs_error"],
        "unconverged": quad["unconverged"],
        "cases": quad["cases"],
        "poiseuille_viscous_rel_error": limit["viscous_rel_error"],
        "poiseuille_limit_rel_error": limit["total_rel_error"][-1],
        "poiseuille_limit": limit,
    }
