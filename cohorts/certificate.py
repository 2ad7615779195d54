"""Calibration certificate of a cohort against a target table: every published figure, the
cohort's value, the interval, the standardised difference, pass or fail.

**Pass rule.** A figure passes when the cohort's weighted value lies inside the figure's
95 % sampling interval (:mod:`cohorts.intervals`): the published value is then within the
sampling error that a study of the source's size would show from a population like the
cohort. ``interval_distance`` is the position of the cohort's value in the interval:
``(achieved - target) / (ci_high - target)`` above the target, ``(achieved - target) /
(target - ci_low)`` below it; a figure passes exactly when ``|interval_distance| <= 1``.

**Standardised differences** (``smd``; 0.1 is a common threshold of negligible imbalance,
Austin 2009):

- mean: ``(achieved - target) / sqrt((sd_target^2 + sd_achieved^2) / 2)`` (Austin 2009);
- SD: ``log(sd_achieved / sd_target)`` (log of the SD ratio; Austin 2009 uses the variance
  ratio);
- quantile: ``(achieved - target) / (IQR / 1.349)``, the normal-consistent SD from the
  published IQR (Wan et al. 2014);
- proportion: ``(p_achieved - p) / sqrt((p_achieved (1 - p_achieved) + p (1 - p)) / 2)``
  (Austin 2009);
- correlation: Cohen's ``q = atanh(r_achieved) - atanh(r)`` (Cohen 1988).

**Multivariate check** (only with a ``reference`` cohort, e.g. a sample drawn from a
reference population): the energy distance (:mod:`cohorts.energy`) between the cohort and
the reference over the table's variables (continuous ones centred and scaled by the
reference's weighted mean and SD, categoricals one-hot), with its permutation p-value. Both
samples are drawn to at most ``max_points`` unweighted points: a weighted sample by
drawing with replacement with probabilities proportional to its weights, at most a tenth of
its Kish effective size (so that repeated points stay rare); an unweighted one without
replacement. Pass: ``p_value >= 0.05`` (no evidence at the 5 % level that the two differ).

References
----------
Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between
treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.
doi:10.1002/sim.3697
Cohen J. Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum, 1988
(ch. 4, q for correlations).
Wan X, Wang W, Liu J, Tong T. Estimating the sample mean and standard deviation from the
sample size, median, range and/or interquartile range. BMC Med Res Methodol 2014;14:135.
doi:10.1186/1471-2288-14-135
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .energy import energy_test
from .evaluate import bind
from .targets import TargetTable, load_targets
from .weighted import cohort_weights, kish_n, weighted_mean, weighted_sd

__all__ = [
    "CERTIFICATE_COLUMNS",
    "MULTIVARIATE_ALPHA",
    "certificate",
    "multivariate_check",
    "plot_certificate",
    "write_certificate",
]

CERTIFICATE_COLUMNS = [
    "row",
    "label",
    "statistic",
    "variable",
    "subgroup",
    "target",
    "ci_low",
    "ci_high",
    "achieved",
    "difference",
    "smd",
    "interval_distance",
    "passed",
    "n_target",
    "n_cohort",
    "n_eff",
    "units",
    "citation",
    "interval",
]
#: Level of the multivariate (energy) test.
MULTIVARIATE_ALPHA = 0.05
#: IQR of the standard normal distribution (2 x 0.6745), for the SD from an IQR.
_IQR_PER_SD = 1.349


def _smd(s, target: float, achieved: float, sd_achieved: float) -> float:
    if not np.isfinite(achieved):
        return math.nan
    if s.statistic == "mean":
        pooled = math.sqrt((s.sd**2 + sd_achieved**2) / 2.0)
        return (achieved - target) / pooled if pooled > 0 else math.nan
    if s.statistic == "sd":
        return math.log(achieved / target) if achieved > 0 else math.nan
    if s.level is not None:
        iqr = s.quartiles[2] - s.quartiles[0]
        return (achieved - target) / (iqr / _IQR_PER_SD)
    if s.statistic == "proportion":
        var = (achieved * (1 - achieved) + target * (1 - target)) / 2.0
        return (achieved - target) / math.sqrt(var) if var > 0 else 0.0
    clip = 1.0 - 1e-12
    return math.atanh(np.clip(achieved, -clip, clip)) - math.atanh(np.clip(target, -clip, clip))


def _interval_distance(target, lo, hi, achieved) -> float:
    diff = achieved - target
    if diff == 0 or not np.isfinite(diff):
        return 0.0 if diff == 0 else math.nan
    half = (hi - target) if diff > 0 else (target - lo)
    return diff / half if half > 0 else math.copysign(math.inf, diff)


def certificate(
    ds: xr.Dataset,
    targets: TargetTable | str | Path | dict,
    *,
    weights: np.ndarray | None = None,
    method: str | None = None,
    reference: xr.Dataset | None = None,
    max_points: int = 1000,
    permutations: int = 199,
    seed: int = 0,
) -> pd.DataFrame:
    """Certificate of a (weighted) cohort against a target table.

    Parameters
    ----------
    ds : xarray.Dataset
        The cohort (dim ``patient``).
    targets : TargetTable, path or mapping
        The target table (:func:`cohorts.load_targets`).
    weights : ndarray, optional
        Patient weights (default the cohort's ``sampling_weight``, else equal).
    method : str, optional
        How the cohort was matched (recorded in the summary).
    reference : xarray.Dataset, optional
        A reference sample for the multivariate check (weighted by its
        ``sampling_weight``); without one the check is left out (``None`` in the summary).
    max_points, permutations, seed : int
        Points per sample, permutations and seed of the multivariate check.

    Returns
    -------
    pandas.DataFrame
        One row per published figure, columns :data:`CERTIFICATE_COLUMNS` (``target``,
        ``ci_low``, ``ci_high``, ``achieved`` and ``difference`` in ``units``; proportions as
        fractions). ``df.attrs["summary"]`` holds the table, the method, ``n_patients``,
        ``kish_n``, ``n_targets``, ``n_passed``, ``all_passed``, ``max_abs_smd``, the pass
        rule and ``multivariate`` (energy distance, p-value, pass; or None).

    Raises
    ------
    TargetError
        The table does not fit the cohort (:meth:`TargetTable.check`).
    """
    table = load_targets(targets).resolved(ds)
    bound = bind(table, ds)
    w = cohort_weights(ds) if weights is None else np.asarray(weights, dtype=float)
    got = bound.achieved(w)
    rows = []
    for j, s in enumerate(table.statistics):
        achieved = float(got["value"][j])
        units = "1" if s.statistic in ("proportion", "correlation") else s.units
        if units is None:
            units = str(ds[s.variable].attrs.get("units", ""))
        rows.append(
            {
                "row": s.row,
                "label": s.label,
                "statistic": s.statistic,
                "variable": s.variable or "",
                "subgroup": s.subgroup or "",
                "target": s.value,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "achieved": achieved,
                "difference": achieved - s.value,
                "smd": _smd(s, s.value, achieved, float(got["sd"][j])),
                "interval_distance": _interval_distance(s.value, s.ci_low, s.ci_high, achieved),
                "passed": bool(s.ci_low <= achieved <= s.ci_high),
                "n_target": s.n,
                "n_cohort": int(got["n"][j]),
                "n_eff": float(got["n_eff"][j]),
                "units": units,
                "citation": s.citation,
                "interval": s.interval,
            }
        )
    df = pd.DataFrame(rows, columns=CERTIFICATE_COLUMNS)
    multi = None
    if reference is not None:
        multi = multivariate_check(
            ds, reference, table, weights=w, max_points=max_points,
            permutations=permutations, seed=seed,
        )  # fmt: skip
    smd = df["smd"].abs()
    df.attrs["summary"] = {
        "table": table.name,
        "table_file": table.source_file,
        "table_sha256": table.sha256,
        "citation": table.citation,
        "role": table.role,
        "n_source": table.n,
        "confidence": table.confidence,
        "method": method or "none",
        "n_patients": int(ds.sizes["patient"]),
        "kish_n": kish_n(w),
        "n_targets": len(df),
        "n_passed": int(df["passed"].sum()),
        "all_passed": bool(df["passed"].all()),
        "max_abs_smd": float(smd.max()) if smd.notna().any() else math.nan,
        "pass_rule": "achieved value inside the target's sampling interval "
        f"({table.confidence:.0%}); multivariate: energy-test p >= {MULTIVARIATE_ALPHA}",
        "multivariate": multi,
    }
    return df


def _design(ds: xr.Dataset, names: list[str], ref: xr.Dataset, w_ref: np.ndarray):
    """Columns of the multivariate check: scaled continuous variables, one-hot categories."""
    cols, labels = [], []
    for name in names:
        meanings = ref[name].attrs.get("flag_meanings")
        x, y = np.asarray(ds[name].values), np.asarray(ref[name].values)
        if meanings:
            codes = ref[name].attrs.get("flag_values", np.arange(len(meanings.split())))
            for code, cat in zip(codes, meanings.split(), strict=True):
                cols.append(((x == code).astype(float), (y == code).astype(float)))
                labels.append(f"{name}={cat}")
        else:
            y = y.astype(float)
            mean, sd = weighted_mean(y, w_ref), weighted_sd(y, w_ref)
            cols.append(((x - mean) / sd, (y - mean) / sd))
            labels.append(name)
    return np.column_stack([c[0] for c in cols]), np.column_stack([c[1] for c in cols]), labels


def _draw(w: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    n = w.shape[0]
    if np.all(w == w[0]):
        return rng.choice(n, size=min(n, max_points), replace=False)
    m = int(min(max_points, max(kish_n(w) / 10.0, 2.0)))
    return rng.choice(n, size=m, replace=True, p=w / w.sum())


def multivariate_check(
    ds: xr.Dataset,
    reference: xr.Dataset,
    targets: TargetTable,
    *,
    weights: np.ndarray | None = None,
    max_points: int = 1000,
    permutations: int = 199,
    seed: int = 0,
) -> dict[str, Any]:
    """Energy-distance test of the cohort against a reference sample (see module docstring).

    Returns
    -------
    dict
        ``variables`` (columns used), ``n_cohort_points``, ``n_reference_points``,
        ``energy_distance``, ``statistic``, ``p_value``, ``permutations``, ``passed``.
    """
    table = load_targets(targets)
    names = [n for n in table.variables if n in ds and n in reference]
    if not names:
        return {"variables": [], "passed": None, "note": "no table variable in both cohorts"}
    w = cohort_weights(ds) if weights is None else np.asarray(weights, dtype=float)
    w_ref = cohort_weights(reference)
    x, y, labels = _design(ds, names, reference, w_ref)
    rng = np.random.default_rng(seed)
    xi, yi = _draw(w, max_points, rng), _draw(w_ref, max_points, rng)
    result = energy_test(x[xi], y[yi], permutations=permutations, seed=seed)
    return {
        "variables": labels,
        "n_cohort_points": int(xi.size),
        "n_reference_points": int(yi.size),
        **result,
        "permutations": permutations,
        "passed": bool(result["p_value"] >= MULTIVARIATE_ALPHA),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_certificate(cert: pd.DataFrame, directory: str | Path) -> dict[str, Path]:
    """Write ``certificate.csv``, ``certificate.json`` (summary and rows; NaN as null) and
    ``certificate.png`` (:func:`plot_certificate`) into ``directory`` (created).

    Returns
    -------
    dict
        ``{"csv": path, "json": path, "figure": path}``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "certificate.csv",
        "json": out / "certificate.json",
        "figure": out / "certificate.png",
    }
    cert.to_csv(paths["csv"], index=False)
    doc = {
        "summary": _jsonable(cert.attrs.get("summary", {})),
        "targets": _jsonable(cert.to_dict(orient="records")),
    }
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n")
    plot_certificate(cert, paths["figure"])
    return paths


def plot_certificate(cert: pd.DataFrame, path: str | Path) -> Path:
    """Figure: every target's sampling interval and the cohort's value, one line each.

    Values are placed on the common scale of :func:`certificate`'s ``interval_distance``
    (the interval is [-1, 1], the target 0), so figures in different units share one axis;
    the numbers are written beside each line. Matplotlib's Agg canvas (no display).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(cert)
    fig = Figure(figsize=(10.0, 1.0 + 0.32 * k), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    pos = np.arange(k)[::-1]
    dist = np.clip(cert["interval_distance"].to_numpy(dtype=float), -3.0, 3.0)
    summary = cert.attrs.get("summary", {})
    conf = summary.get("confidence", 0.95)
    ax.hlines(pos, -1.0, 1.0, color="0.6", lw=4, label=f"target's {conf:.0%} sampling interval")
    ax.plot(np.zeros(k), pos, "|", color="k", ms=12, label="target")
    ok = cert["passed"].to_numpy(dtype=bool)
    ax.plot(dist[ok], pos[ok], "o", color="tab:green", label="achieved (pass)")
    ax.plot(dist[~ok], pos[~ok], "X", color="tab:red", ms=8, label="achieved (fail)")
    ax.set_yticks(pos, cert["label"], fontsize=7)
    ax.set_xlim(-3.2, 3.2)
    ax.set_xlabel("position in the target's interval (-1 = lower end, +1 = upper end)")
    for y, row in zip(pos, cert.itertuples(index=False), strict=True):
        ax.annotate(
            f"{row.target:.4g} [{row.ci_low:.4g}, {row.ci_high:.4g}] -> {row.achieved:.4g}",
            (1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_title(
        f"{summary.get('table', 'targets')}: {summary.get('n_passed', ok.sum())} of {k} "
        f"targets met (method {summary.get('method', 'none')}, Kish n "
        f"{summary.get('kish_n', math.nan):.0f})",
        fontsize=9,
    )
    fig.legend(fontsize=7, loc="outside lower center", ncols=4)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
