"""Snakemake adapter: calibration stage."""

from isct.stages import run_calibrate, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_calibrate(
        trial_of(snakemake.config),  # noqa: F821
        cohort=snakemake.input.cohort,  # noqa: F821
        summary=snakemake.output.summary,  # noqa: F821
        fit_table=snakemake.output.fit,  # noqa: F821
        loso_table=snakemake.output.loso,  # noqa: F821
        runs=snakemake.params.runs,  # noqa: F821
    )
