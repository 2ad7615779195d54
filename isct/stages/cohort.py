"""Cohort stage (``workflow/rules/cohort.smk``): sample the population, check it, describe it."""

from __future__ import annotations

import logging
from pathlib import Path

from ..chain import record_stage
from ..trial import Trial

__all__ = ["run_cohort"]

log = logging.getLogger("isct.cohort")


def run_cohort(trial: Trial, *, store: str, check: str, representation: str, figure: str) -> None:
    """Sample ``cohort.n`` patients of the population spec into ``store``.

    Also writes the comparison with the spec's targets (``check``), the representation of
    the trial's subgroups (``representation``, bands from ``report.subgroups``) and the
    check figure, and records the stage's inputs and outputs.
    """
    import cohorts
    from credibility.tables import representation_table

    spec_path = trial.resolve(trial["cohort"]["population"])
    spec = cohorts.load_spec(spec_path)
    ds = cohorts.write_cohort(
        spec,
        trial["cohort"]["n"],
        store,
        seed=trial.seed,
        batch_size=trial["cohort"]["batch_size"],
    )
    ds = ds.load()
    cohorts.compare_to_target(spec, ds).to_csv(check, index=False)
    representation_table(ds, trial["report"]["subgroups"]).to_csv(representation, index=False)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    cohorts.plot_check(spec, ds, figure)
    record_stage(
        Path(store).parent,
        "cohort",
        inputs={"population_spec": spec_path},
        outputs={
            "cohort": store,
            "cohort_check": check,
            "representation": representation,
            "figure": figure,
        },
    )
    log.info("cohort: %d patients -> %s", ds.sizes["patient"], store)
