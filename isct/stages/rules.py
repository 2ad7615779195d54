"""The rules' ``run:`` blocks: Snakemake's paths handed to each stage's ``run_*`` call.

Each rule of ``workflow/rules/`` ends with::

    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)

so the rule files keep only their inputs, outputs and params, and this module is the one
place that maps Snakemake's names to the stage functions' keywords. The stage runs inside
:func:`~isct.stages.common.running_stage` (its log file; one stage at a time per process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .calibrate import run_calibrate
from .cohort import run_cohort
from .common import running_stage, trial_of
from .credibility import run_credibility
from .report import run_report
from .sensitivity import run_sensitivity
from .simulate import run_simulate
from .uq import run_uq

__all__ = ["run_rule"]


def _cohort(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_cohort(
        trial_of(config),
        store=output.store,
        check=output.check,
        representation=output.representation,
        figure=output.figure,
        certificate=output.certificate,
    )


def _calibrate(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_calibrate(
        trial_of(config),
        cohort=input.cohort,
        summary=output.summary,
        fit_table=output.fit,
        loso_table=output.loso,
        runs=params.runs,
    )


def _simulate(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_simulate(
        trial_of(config, input.calibration),
        cohort=input.cohort,
        store=params.store,
        summary=output.summary,
        sized_cohort=output.get("cohort"),
        sizing=output.get("sizing"),
    )


def _uq(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_uq(
        trial_of(config, input.calibration),
        cohort=input.cohort,
        outcomes=params.outcomes,
        store=params.store,
        runs=params.runs,
        summary=output.summary,
        figure=output.figure,
    )


def _sensitivity(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_sensitivity(
        trial_of(config, input.calibration),
        cohort=input.cohort,
        outcomes=params.outcomes,
        store=params.store,
        runs=params.runs,
        summary=output.summary,
        figure=output.figure,
        convergence_figure=output.convergence,
    )


def _credibility(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_credibility(
        trial_of(config, input.calibration),
        cohort=input.cohort,
        outcomes=params.outcomes,
        evidence=output.evidence,
        validation=output.validation,
    )


def _report(config: Mapping, input: Any, output: Any, params: Any) -> None:
    run_report(
        trial_of(config, input.calibration),
        results=params.results,
        html=output.html,
        manifest=output.manifest,
        config_path=params.configfile,
    )


#: rule name -> the call of its stage
RULES: dict[str, Callable[[Mapping, Any, Any, Any], None]] = {
    "cohort": _cohort,
    "calibrate": _calibrate,
    "simulate": _simulate,
    "uq": _uq,
    "sensitivity": _sensitivity,
    "credibility": _credibility,
    "report": _report,
}


def run_rule(
    rule: str, config: Mapping, input: Any, output: Any, params: Any, log: Any, threads: int
) -> None:
    """Run the stage of Snakemake rule ``rule`` with the job's paths, logging to ``log[0]``."""
    with running_stage(log[0], threads):
        RULES[rule](config, input, output, params)
