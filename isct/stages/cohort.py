"""Cohort stage (``workflow/rules/cohort.smk``): sample the population, match it, describe it.

Without ``cohort.match`` the cohort is the population spec's sample. With it, the cohort is
matched to a published baseline table (:func:`cohorts.match`): re-weighted, selected from a
larger candidate pool, or generated from the refitted spec, and the calibration certificate
is written to ``certificate/``. Every further population of ``cohort.populations`` gets its
own weights over the same patients (``population_weight_<name>``, entropy balancing to its
table) and certificate, so that the report can answer the trial for it without
re-simulating.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..chain import record_stage
from ..jsonio import write_json
from ..trial import Trial

__all__ = ["POPULATION_WEIGHT", "run_cohort"]

log = logging.getLogger("isct.cohort")

#: Prefix of the cohort variables holding a further population's weights.
POPULATION_WEIGHT = "population_weight_"
#: Defaults of ``cohort.match``.
DEFAULT_MAX_RATIO = 20.0
DEFAULT_CANDIDATES = 10


def _matched(trial: Trial, spec: Any, store: str) -> tuple[xr.Dataset, Any]:
    """The cohort written to ``store``: sampled, then matched when the config asks."""
    import cohorts

    cfg = trial["cohort"]
    match = cfg["match"]
    n, seed = cfg["n"], trial.seed
    if match is None:
        ds = cohorts.write_cohort(spec, n, store, seed=seed, batch_size=cfg["batch_size"])
        return ds.load(), None
    targets = cohorts.load_targets(trial.resolve(match["targets"]))
    method = match.get("method", "weights")
    ratio = float(match.get("max_ratio", DEFAULT_MAX_RATIO))
    if method == "select":
        pool = int(np.ceil(n * float(match.get("candidates", DEFAULT_CANDIDATES))))
        candidates = cohorts.sample(spec, pool, seed=seed)
        result = cohorts.match(candidates, targets, method="select", size=n, max_ratio=ratio)
    elif method == "fit":
        result = cohorts.match(cohorts.sample(spec, n, seed=seed), targets, method="fit", spec=spec)
    else:
        ds = cohorts.write_cohort(spec, n, store, seed=seed, batch_size=cfg["batch_size"])
        result = cohorts.match(ds.load(), targets, method="weights", max_ratio=ratio)
    result.write(store)
    return xr.open_zarr(store, consolidated=False).load(), result


#: Keys of a match summary kept in the certificate summary (the rest is detail or paths).
SUMMARY_KEYS = (
    "table", "citation", "role", "n_source", "table_sha256", "method", "n_patients", "kish_n",
    "n_targets", "n_passed", "all_passed", "max_abs_smd", "pass_rule",
)  # fmt: skip


def _summary(result: Any) -> dict[str, Any]:
    return {k: result.summary.get(k) for k in SUMMARY_KEYS}


def _populations(trial: Trial, ds: xr.Dataset, directory: Path) -> dict[str, Any]:
    """Weights and certificate of every further population over the cohort's patients."""
    import cohorts

    out = {}
    if "matching_weight" in ds:  # each population is matched from the design weights
        base = ds["sampling_weight"].values / ds["matching_weight"].values
        ds = ds.drop_vars("matching_weight").assign(sampling_weight=("patient", base))
    for population in trial["cohort"]["populations"]:
        table = cohorts.load_targets(trial.resolve(population["targets"]))
        ratio = float(population.get("max_ratio", DEFAULT_MAX_RATIO))
        result = cohorts.match(ds, table, method="weights", max_ratio=ratio)
        name = population["name"]
        cohorts.write_certificate(result.certificate, directory / name)
        out[name] = {
            "label": population["label"],
            **_summary(result),
            "weights": np.asarray(result.cohort["sampling_weight"].values, dtype=float),
        }
    return out


def run_cohort(
    trial: Trial,
    *,
    store: str,
    check: str,
    representation: str,
    figure: str,
    certificate: str,
) -> None:
    """Sample (and match) ``cohort.n`` patients of the population spec into ``store``.

    Also writes the comparison with the spec's own targets (``check``), the representation
    of the trial's subgroups (``representation``), the check figure, and the certificate
    summary (``certificate``, a JSON file in the folder that holds every certificate).
    """
    import cohorts
    from credibility.tables import representation_table

    spec_path = trial.resolve(trial["cohort"]["population"])
    spec = cohorts.load_spec(spec_path)
    ds, result = _matched(trial, spec, store)
    cert_dir = Path(certificate).parent
    cert_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"matched": result is not None, "populations": {}}
    if result is not None:
        cohorts.write_certificate(result.certificate, cert_dir / "trial")
        summary.update(_summary(result))
    populations = _populations(trial, ds, cert_dir)
    if populations:
        weights = {
            f"{POPULATION_WEIGHT}{name}": ("patient", p.pop("weights"), {"units": "1"})
            for name, p in populations.items()
        }
        xr.Dataset(weights, coords={"patient": ds["patient"].values}).to_zarr(
            store, mode="a", consolidated=False
        )
        ds = xr.open_zarr(store, consolidated=False).load()
        summary["populations"] = populations
    write_json(certificate, summary)
    cohorts.compare_to_target(spec, ds).to_csv(check, index=False)
    representation_table(ds, trial["report"]["subgroups"]).to_csv(representation, index=False)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    cohorts.plot_check(spec, ds, figure)
    inputs = {"population_spec": spec_path}
    if result is not None:
        inputs["targets"] = trial.resolve(trial["cohort"]["match"]["targets"])
    for i, population in enumerate(trial["cohort"]["populations"]):
        inputs[f"population_targets_{i}"] = trial.resolve(population["targets"])
    record_stage(
        Path(store).parent,
        "cohort",
        inputs=inputs,
        outputs={
            "cohort": store,
            "cohort_check": check,
            "representation": representation,
            "figure": figure,
            "certificate": cert_dir,
        },
    )
    log.info("cohort: %d patients -> %s", ds.sizes["patient"], store)
