"""Snakemake adapter: report stage (assessment, manifest, HTML/PDF report)."""

from isct.stages import run_report, setup_logging, trial_of

# Dask worker processes re-import this file (spawn): run only in the Snakemake job itself.
if __name__ == "__main__":
    setup_logging(snakemake.log[0], snakemake.threads)  # noqa: F821
    run_report(
        trial_of(snakemake.config, snakemake.input.calibration),  # noqa: F821
        results=snakemake.params.results,  # noqa: F821
        html=snakemake.output.html,  # noqa: F821
        manifest=snakemake.output.manifest,  # noqa: F821
        config_path=snakemake.params.configfile,  # noqa: F821
    )
