"""Snakemake adapter: cohort stage."""

from isct.stages import run_cohort, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_cohort(
        trial_of(snakemake.config),  # noqa: F821
        store=snakemake.output.store,  # noqa: F821
        check=snakemake.output.check,  # noqa: F821
        representation=snakemake.output.representation,  # noqa: F821
        figure=snakemake.output.figure,  # noqa: F821
        certificate=snakemake.output.certificate,  # noqa: F821
    )
