"""Sequential sizing: a trial that simulates the patients its answer needs, and no more.

A config's ``sizing`` block names the endpoint and contrast that size the trial, the target
half-width and the waves. The simulate stage then runs waves of patients in cohort order
(patients ``0 .. n_k``, ``n_k = n_min + k wave``, capped at ``n_max``, the cohort's size) into
a resumable engine store (``sizing/waves.zarr``). After each wave it updates an anytime-valid
confidence sequence for the paired between-arm difference of the patients counted so far
(:mod:`credibility.sequential`) and stops at the first look where the sequence's half-width
is at or below the target, or at ``n_max``.

Both arms see the same virtual patients and the same per-patient random effects (common
random numbers), so the difference is within-patient; the variance reduction against
unpaired arms is reported.

The stop depends only on the outcomes of the first ``n_k`` patients, which are the same for
any worker count or wave timing: for a seed the stop is deterministic, and a run interrupted
mid-way resumes its store and reaches the same stop. The trial's cohort and outcomes are then
the first ``n_stop`` patients (``cohort.zarr``, ``outcomes.zarr``, copied, not re-simulated:
:func:`isct.engine.prefix_store`); every later stage reads them as a fixed-size trial.

``sizing/sizing.json`` records every look, the stop and why, the fixed-n designs it is
compared with, and the common-random-numbers variance reduction.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cluster import client_from_env
from .engine import prefix_store, simulate, written_in_place
from .evaluator import clean_attrs
from .jsonio import write_json
from .trial import Trial

__all__ = ["looks", "run_sized"]

log = logging.getLogger("isct.sizing")


def looks(n_min: int, wave: int, n_max: int) -> list[int]:
    """Patients simulated at each look: ``n_min, n_min + wave, ...``, ending at ``n_max``."""
    out = list(range(n_min, n_max, wave)) if n_min < n_max else []
    return [*out, n_max]


def _look(d: np.ndarray, kind: str, alpha: float, t_opt: float, start: int) -> dict[str, float]:
    from credibility.sequential import confidence_sequence, naive_ci

    m = d.size
    if m == 0:  # nobody counted yet (e.g. no patient of the subgroup among the first n)
        return {
            "pairs": 0,
            "estimate": math.nan,
            "low": -math.inf,
            "high": math.inf,
            "half_width": math.inf,
            "naive_low": -math.inf,
            "naive_high": math.inf,
        }
    cs = confidence_sequence(d, kind, alpha, t_opt=t_opt, start=start)
    naive = naive_ci(d, alpha)
    return {
        "pairs": int(m),
        "estimate": float(cs.estimate[-1]),
        "low": float(cs.low[-1]),
        "high": float(cs.high[-1]),
        "half_width": float(cs.half_width[-1]),
        "naive_low": float(naive.low[-1]),
        "naive_high": float(naive.high[-1]),
        "method": cs.method,
    }


def _prefix(ds: xr.Dataset, names: list[str], n: int) -> xr.Dataset:
    return ds[names].isel(patient=slice(0, n)).load() if names else xr.Dataset()


def _write_prefix_cohort(pool: str, out: str, n: int) -> xr.Dataset:
    ds = xr.open_zarr(pool, consolidated=False, chunks=None).isel(patient=slice(0, n)).load()
    ds = clean_attrs(ds)
    ds.attrs["sized_from"] = f"the first {n} patients of {Path(pool).name}"
    with written_in_place(out) as partial:
        ds.to_zarr(partial, mode="w", consolidated=False)
    return ds


def run_sized(
    trial: Trial,
    *,
    pool: str,
    waves: str,
    cohort_out: str,
    outcomes_out: str,
    summary: str,
    client: Any = None,
) -> dict[str, Any]:
    """Simulate waves of ``pool`` until the sizing target is met; write the sized trial.

    Returns the ``sizing.json`` content (also written to ``summary``).
    """
    from credibility.planning import contrast_of, paired_differences
    from credibility.sequential import fixed_n, variance_reduction

    cfg = trial["sizing"]
    contrast = contrast_of(cfg, trial.arm_names)
    conf = float(cfg.get("confidence", 0.95))
    alpha = 1.0 - conf
    n_max = int(cfg.get("n_max") or trial["cohort"]["n"])
    plan = looks(int(cfg["n_min"]), int(cfg["wave"]), n_max)
    target = float(cfg["half_width"])
    # only the variables the sequence needs, read without Dask (a prefix of a few columns)
    from credibility.comparators import where_variables

    cohort_all = xr.open_zarr(pool, consolidated=False, chunks=None)
    named = where_variables(cfg["where"]) if cfg.get("where") else set()
    cohort_vars = sorted(v for v in named if v in cohort_all.data_vars)
    outcome_vars = sorted({cfg["endpoint"], "status", *(named - set(cohort_vars))})
    batch = trial["simulation"]["batch_size"]
    records: list[dict[str, Any]] = []
    t_opt = cfg.get("t_opt")
    stop: dict[str, Any] | None = None
    first = True
    with client_from_env() if client is None else contextlib.nullcontext(client) as active:
        for n_k in plan:
            simulate(
                pool,
                trial.model,
                trial.arms,
                waves,
                client=active,
                batch_size=batch,
                settings=trial.settings,
                retries=trial["simulation"]["retries"],
                on_mismatch="restart" if first else "raise",
                limit=n_k,
                progress=False,
            )
            first = False
            head = _prefix(xr.open_zarr(waves, consolidated=False, chunks=None), outcome_vars, n_k)
            cohort = _prefix(cohort_all, cohort_vars, n_k)
            b, a, d, kind = paired_differences(head, cohort, cfg, contrast)
            scale = 100.0 if kind == "proportion" else 1.0
            if t_opt is None:  # fixed at the first look (the burn-in): the same on every run
                t_opt = _planned_pairs(d, scale, target, alpha)
            start = records[0]["pairs"] if records else max(2, d.size)  # the burn-in
            look = _look(d, kind, alpha, float(t_opt), start)
            look["n"] = int(n_k)
            for key in ("estimate", "low", "high", "half_width", "naive_low", "naive_high"):
                look[key] *= scale
            records.append(look)
            log.info(
                "sizing look at %d patients (%d pairs): %s [%s, %s], half-width %s (target %s)",
                n_k,
                look["pairs"],
                look["estimate"],
                look["low"],
                look["high"],
                look["half_width"],
                target,
            )
            if look["half_width"] <= target:
                stop = {
                    "reason": "target",
                    "text": (
                        f"half-width {look['half_width']:.4g} ≤ target {target:g} at look "
                        f"{len(records)} ({n_k} patients, {look['pairs']} pairs counted)"
                    ),
                }
                break
        if stop is None:
            look = records[-1]
            stop = {
                "reason": "n_max",
                "text": (
                    f"n_max reached ({n_max} patients) with half-width "
                    f"{look['half_width']:.4g} above the target {target:g}"
                ),
            }
        n_stop = records[-1]["n"]
        stop.update(n=int(n_stop), pairs=int(records[-1]["pairs"]), looks=len(records))
        cohort_ds = _write_prefix_cohort(pool, cohort_out, n_stop)
        prefix_store(waves, cohort_out, trial.model, outcomes_out)
    share = stop["pairs"] / n_stop if n_stop else 1.0
    sd = float(np.std(d, ddof=1)) * scale if d.size > 1 else math.nan
    fixed: dict[str, Any] = {
        "oracle_patients": _patients(fixed_n(sd, target, alpha), share) if sd > 0 else None,
        "oracle_basis": (
            f"a fixed-n {conf:.0%} normal interval that knew the SD of the paired difference "
            f"({sd:.4g}, as estimated at the stop) before the trial"
        ),
    }
    if kind == "proportion":
        fixed["up_front_patients"] = _patients(fixed_n(100.0, target, alpha), share)
        fixed["up_front_basis"] = (
            "the variance bound of a difference of two indicators (Var(D) <= 1), the only "
            "SD a design sized before any patient is simulated can rely on"
        )
    elif cfg.get("planning_sd"):
        fixed["up_front_patients"] = _patients(fixed_n(cfg["planning_sd"], target, alpha), share)
        fixed["up_front_basis"] = (
            f"the planning SD {cfg['planning_sd']:g} given in sizing.planning_sd"
        )
    else:
        fixed["up_front_patients"] = n_max
        fixed["up_front_basis"] = "no SD known up front: the budget n_max"
    result = {
        "endpoint": cfg["endpoint"],
        "kind": kind,
        "unit": "percentage points"
        if kind == "proportion"
        else head[cfg["endpoint"]].attrs.get("units", ""),
        "contrast": list(contrast),
        "where": cfg.get("where"),
        "half_width_target": target,
        "confidence": conf,
        "n_min": int(cfg["n_min"]),
        "wave": int(cfg["wave"]),
        "n_max": n_max,
        "t_opt": float(t_opt),
        "t_opt_basis": (
            "sizing.t_opt"
            if cfg.get("t_opt")
            else "pairs a fixed-n interval with the first look's SD would need for the target"
        ),
        "method": records[-1].get("method"),
        "looks": records,
        "stop": stop,
        "fixed": fixed,
        "saved_vs_up_front": int(fixed["up_front_patients"] - n_stop),
        "saved_vs_n_max": int(n_max - n_stop),
        "crn": variance_reduction(b * scale, a * scale),
        "patients": int(cohort_ds.sizes["patient"]),
        "source": cfg.get("source"),
    }
    result["certificate"] = _certificate(trial, cohort_ds)
    write_json(summary, result)
    return result


def _certificate(trial: Trial, cohort: xr.Dataset) -> dict[str, Any] | None:
    """The enrolled population's certificate of the sized cohort (the first ``n_stop``
    patients; ``certificate/`` holds the pool's)."""
    match = trial["cohort"]["match"]
    if not match:
        return None
    import cohorts

    table = cohorts.load_targets(trial.resolve(match["targets"]))
    cert = cohorts.certificate(cohort, table, method=match.get("method"))
    keep = ["label", "target", "ci_low", "ci_high", "achieved", "smd", "passed"]
    return {
        "table": table.name,
        "n_patients": int(cohort.sizes["patient"]),
        "all_passed": bool(cert["passed"].all()),
        "n_passed": int(cert["passed"].sum()),
        "n_targets": len(cert),
        "rows": cert[keep].to_dict(orient="records"),
    }


def _planned_pairs(d: np.ndarray, scale: float, target: float, alpha: float) -> float:
    """Pairs at which a mean's sequence is made tightest: where a fixed-n interval with the
    burn-in's SD would reach the target (at least the burn-in itself)."""
    from scipy import stats

    if d.size < 2 or not np.std(d) > 0:
        return max(2.0, float(d.size))
    z = stats.norm.ppf(1 - alpha / 2)
    return max(float(d.size), (z * scale * float(np.std(d, ddof=1)) / target) ** 2)


def _patients(pairs: int, share: float) -> int:
    return int(math.ceil(pairs / share)) if share > 0 else pairs
