"""Credibility report: tables from the trial's Datasets and a self-contained HTML (and PDF).

The report follows the reporting structure of the FDA guidance *Assessing the Credibility of
Computational Modeling and Simulation in Medical Device Submissions* (2023): summary, question
of interest and context of use with model risk, model description, verification, validation,
uncertainty quantification and sensitivity analysis, results (by arm and subgroup), failures,
limitations, and the goal-vs-achieved table of the 13 ASME V&V 40 credibility factors.

The integrator calls :func:`build_context` with whatever the run produced (every piece but the
trial metadata is optional: a missing piece renders as "not computed in this run"), then
:func:`render_report`. The evidence the plan is assessed on comes from
:func:`credibility.evidence.collect_evidence`.

Modules
-------
context
    :func:`build_context`: one call per report section.
sections
    One function per section of the template (``templates/report.html.j2``).
html
    HTML tables from DataFrames, dicts and small Datasets.
render
    :func:`render_report`: the Jinja template to HTML, WeasyPrint to PDF.
"""

from __future__ import annotations

from .context import NOT_COMPUTED, ReportError, build_context, finish_context, start_context
from .render import render_report

__all__ = [
    "NOT_COMPUTED",
    "ReportError",
    "build_context",
    "finish_context",
    "render_report",
    "start_context",
]
