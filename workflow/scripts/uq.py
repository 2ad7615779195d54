"""Snakemake adapter: uncertainty quantification stage."""

from isct.stages import run_uq, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_uq(
        trial_of(snakemake.config, snakemake.input.calibration),  # noqa: F821
        cohort=snakemake.input.cohort,  # noqa: F821
        outcomes=snakemake.params.outcomes,  # noqa: F821
        store=snakemake.params.store,  # noqa: F821
        runs=snakemake.params.runs,  # noqa: F821
        summary=snakemake.output.summary,  # noqa: F821
        figure=snakemake.output.figure,  # noqa: F821
    )
