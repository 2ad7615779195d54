"""Snakemake adapter: sensitivity analysis stage."""

from isct.stages import run_sensitivity, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_sensitivity(
        trial_of(snakemake.config, snakemake.input.calibration),  # noqa: F821
        cohort=snakemake.input.cohort,  # noqa: F821
        outcomes=snakemake.params.outcomes,  # noqa: F821
        store=snakemake.params.store,  # noqa: F821
        runs=snakemake.params.runs,  # noqa: F821
        summary=snakemake.output.summary,  # noqa: F821
        figure=snakemake.output.figure,  # noqa: F821
        convergence_figure=snakemake.output.convergence,  # noqa: F821
    )
