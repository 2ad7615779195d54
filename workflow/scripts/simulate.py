"""Snakemake adapter: simulation stage (the store is resumed, not replaced)."""

from isct.stages import run_simulate, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_simulate(
        trial_of(snakemake.config, snakemake.input.calibration),  # noqa: F821
        cohort=snakemake.input.cohort,  # noqa: F821
        store=snakemake.params.store,  # noqa: F821
        summary=snakemake.output.summary,  # noqa: F821
        sized_cohort=snakemake.output.get("cohort"),  # noqa: F821
        sizing=snakemake.output.get("sizing"),  # noqa: F821
    )
