"""Planning the real trial from the virtual one.

A virtual trial estimates, for the patients of a subgroup, each arm's outcome and their
within-patient difference. A clinical trial of the same question randomises *different*
patients to each arm (parallel groups, 1:1). :func:`real_trial_size` gives the patients per
arm that trial needs for a stated power, for superiority (two-sided ``alpha``) or
non-inferiority (one-sided ``alpha``, margin ``M``), from the normal-approximation formula

    n per arm = (z_(1-a) + z_power)^2 (sd_a^2 + sd_b^2) / (effect - null)^2

(Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, 3rd ed., 2017, §3.2 for
means and §4.2 for proportions, where ``sd^2 = p (1 - p)``). The virtual effect and SDs are
themselves estimates: the patients are resampled (paired bootstrap) and the size recomputed,
so the number comes with an interval, and with the share of resamples in which the effect
does not clear the null at all (no size would do).

:func:`paired_differences` is shared with sequential sizing (:mod:`isct.sizing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from .comparators import event_values, select

__all__ = ["contrast_of", "paired_differences", "planning_table", "real_trial_size"]

#: Patients per arm reported as "not reachable" above this.
CAP = 10**7


def contrast_of(item: Mapping[str, Any], arm_names: Sequence[str]) -> tuple[str, str]:
    """``(arm_b, arm_a)`` of a sizing or planning entry: its ``contrast``, else the second
    arm against the first."""
    contrast = item.get("contrast")
    if contrast:
        return str(contrast[0]), str(contrast[1])
    return str(arm_names[1]), str(arm_names[0])


def paired_differences(
    outcomes: xr.Dataset, cohort: xr.Dataset, item: Mapping[str, Any], contrast: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Per-patient values in arm b and arm a, and ``b - a``, of the counted patients in order.

    Counted: simulated ok in both arms, a finite value in both, inside ``item["where"]``. An
    entry with ``category`` or ``threshold`` gives event indicators (0/1). Returns
    ``(b, a, d, kind)`` with ``kind`` ``"mean"`` or ``"proportion"``.
    """
    name = item["endpoint"]
    x = outcomes[name].sel(arm=list(contrast)).transpose("arm", "patient").values.astype(float)
    kind = "proportion" if item.get("category") or item.get("threshold") else "mean"
    if kind == "proportion":
        x = event_values(item, x)
    ok = (outcomes["status"].sel(arm=list(contrast)).values == 0).all(axis=0)
    ok &= np.isfinite(x).all(axis=0)
    if item.get("where"):
        n = outcomes.sizes["patient"]
        variables = {
            str(v): np.asarray(cohort[v].values)
            for v in cohort.data_vars
            if cohort[v].dims == ("patient",)
        }
        variables.update(
            {
                str(v): np.asarray(outcomes[v].sel(arm=contrast[1]).values)
                for v in outcomes.data_vars
                if outcomes[v].dims == ("arm", "patient")
            }
        )
        ok &= select(item["where"], variables, n)
    b, a = x[0][ok], x[1][ok]
    return b, a, b - a, kind


def real_trial_size(
    b,
    a,
    *,
    hypothesis: str = "superiority",
    alpha: float | None = None,
    power: float = 0.8,
    margin: float = 0.0,
    better: str = "higher",
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Patients per arm of a parallel-group trial, from per-patient values ``b`` and ``a``.

    ``margin`` and the returned effect are in the values' units (a share: 0-1). ``alpha``
    defaults to 0.05 two-sided (superiority) or 0.025 one-sided (non-inferiority).
    """
    b, a = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
    if hypothesis not in ("superiority", "non_inferiority"):
        raise ValueError(f"hypothesis is {hypothesis!r}; allowed: superiority, non_inferiority")
    if alpha is None:
        alpha = 0.05 if hypothesis == "superiority" else 0.025
    z_a = stats.norm.ppf(1 - alpha / 2 if hypothesis == "superiority" else 1 - alpha)
    z = (z_a + stats.norm.ppf(power)) ** 2

    def size(bb: np.ndarray, aa: np.ndarray) -> np.ndarray:
        """Per resample (rows) the patients per arm."""
        effect = bb.mean(axis=-1) - aa.mean(axis=-1)
        var = bb.var(axis=-1, ddof=1) + aa.var(axis=-1, ddof=1)
        if hypothesis == "superiority":
            gap = np.abs(effect)
        else:  # H0: b worse than a by the margin or more
            gap = effect + margin if better == "higher" else margin - effect
        with np.errstate(divide="ignore", invalid="ignore"):
            n = np.where(gap > 0, np.ceil(z * var / gap**2), np.inf)
        return n, effect

    n_point, effect = size(b[None, :], a[None, :])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, b.size, size=(n_boot, b.size))
    n_boot_sizes, boot_effect = size(b[idx], a[idx])
    finite = np.isfinite(n_boot_sizes)
    ordered = np.sort(n_boot_sizes)  # inf sorts last; order statistics need no arithmetic
    lo = ordered[int(np.floor(0.025 * (n_boot - 1)))]
    hi = ordered[int(np.ceil(0.975 * (n_boot - 1)))]
    return {
        "n_virtual": int(b.size),
        "effect": float(effect[0]),
        "effect_low": float(np.percentile(boot_effect, 2.5)),
        "effect_high": float(np.percentile(boot_effect, 97.5)),
        "sd_a": float(a.std(ddof=1)),
        "sd_b": float(b.std(ddof=1)),
        "alpha": float(alpha),
        "power": float(power),
        "n_per_arm": float(n_point[0]),
        "n_per_arm_low": float(lo),
        "n_per_arm_high": float(hi),
        "share_unreachable": float(1.0 - finite.mean()),
    }


def planning_table(
    outcomes: xr.Dataset,
    cohort: xr.Dataset,
    items: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per planning entry (config ``planning``) with :func:`real_trial_size`."""
    arm_names = [str(a) for a in outcomes["arm"].values]
    rows = []
    for item in items:
        contrast = contrast_of(item, arm_names)
        b, a, _, kind = paired_differences(outcomes, cohort, item, contrast)
        scale = 100.0 if kind == "proportion" else 1.0
        margin = float(item.get("margin") or 0.0) / scale
        r = real_trial_size(
            b,
            a,
            hypothesis=item["hypothesis"],
            alpha=item.get("alpha"),
            power=float(item.get("power", 0.8)),
            margin=margin,
            better=item.get("better", "higher"),
            seed=seed,
        )
        unit = (
            "percentage points"
            if kind == "proportion"
            else outcomes[item["endpoint"]].attrs.get("units", "")
        )
        rows.append(
            {
                "label": item["label"],
                "comparison": f"{contrast[0]} − {contrast[1]}",
                "hypothesis": item["hypothesis"].replace("_", "-"),
                "margin": item.get("margin"),
                "unit": unit,
                "virtual effect": _fmt(
                    scale * r["effect"], scale * r["effect_low"], scale * r["effect_high"]
                ),
                "alpha": r["alpha"],
                "power": r["power"],
                "patients per arm": _n(r["n_per_arm"]),
                "95 % interval": f"{_n(r['n_per_arm_low'])} – {_n(r['n_per_arm_high'])}",
                "resamples with no reachable size": f"{100 * r['share_unreachable']:.1f} %",
                "virtual patients": r["n_virtual"],
                "source": item.get("source", ""),
            }
        )
    return pd.DataFrame(rows)


def _n(value: float) -> str:
    return "not reachable" if not np.isfinite(value) or value > CAP else f"{int(value):,}"


def _fmt(x: float, lo: float, hi: float) -> str:
    return f"{x:.3g} [{lo:.3g}, {hi:.3g}]"
