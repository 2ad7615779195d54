"""The workflow's stages, one module per rule file of ``workflow/rules/``.

=====================  ===============================  ==================================
module                 rule file                        writes
=====================  ===============================  ==================================
:mod:`.common`         ``common.smk``                   (the trial of a Snakemake config)
:mod:`.cohort`         ``cohort.smk``                   ``cohort.zarr``, cohort check
:mod:`.calibrate`      ``calibrate.smk``                ``calibration/calibration.json``
:mod:`.simulate`       ``simulate.smk``                 ``outcomes.zarr``
:mod:`.uq`             ``uq.smk``                       ``uq.zarr``
:mod:`.sensitivity`    ``sensitivity.smk``              ``sa.zarr``
:mod:`.credibility`    ``credibility.smk``              ``evidence/``
:mod:`.report`         ``report.smk``                   manifest, the report
:mod:`.rules`          every rule's ``run:`` block      (Snakemake's paths to the stage)
=====================  ===============================  ==================================

Each stage takes the :class:`~isct.trial.Trial` and the paths Snakemake hands it, calls the
packages, writes its outputs and ends by recording the SHA-256 of what it read and wrote in
``provenance/<stage>.json`` (:func:`isct.chain.record_stage`). The rules' ``run:`` blocks only
hand Snakemake's paths to these calls (:mod:`.rules`), inside :func:`running_stage`.
"""

from .calibrate import run_calibrate
from .cohort import run_cohort
from .common import running_stage, trial_of
from .credibility import run_credibility
from .report import report_tables, reproducibility_evidence, run_report
from .sensitivity import run_sensitivity
from .simulate import run_simulate
from .uq import run_uq

__all__ = [
    "report_tables",
    "reproducibility_evidence",
    "run_calibrate",
    "run_cohort",
    "run_credibility",
    "run_report",
    "run_sensitivity",
    "run_simulate",
    "run_uq",
    "running_stage",
    "trial_of",
]
