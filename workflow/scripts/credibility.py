"""Snakemake adapter: credibility evidence stage."""

from isct.stages import run_credibility, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_credibility(
        trial_of(snakemake.config, snakemake.input.calibration),  # noqa: F821
        cohort=snakemake.input.cohort,  # noqa: F821
        outcomes=snakemake.params.outcomes,  # noqa: F821
        evidence=snakemake.output.evidence,  # noqa: F821
        validation=snakemake.output.validation,  # noqa: F821
    )
