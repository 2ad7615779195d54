"""Report sections of the virtual population: its calibration certificate against the
enrolled population's baseline table, and the trial's answer for further populations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from credibility import figures as _fig

from .html import kv_table, table

__all__ = ["certificate", "populations"]

#: Certificate columns shown in the report.
CERTIFICATE_COLUMNS = (
    "label", "target", "ci_low", "ci_high", "achieved", "smd", "passed", "n_target", "citation",
)  # fmt: skip


def certificate(
    summary: Mapping[str, Any] | None,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, str | Path],
) -> dict[str, Any] | None:
    """§8 The calibration certificate of the matched cohort and of every further population.

    ``summary`` is the cohort stage's ``certificate/summary.json``; ``tables`` and
    ``figures`` the certificate CSVs and PNGs by population name (``trial`` for the
    enrolled population).
    """
    if summary is None:
        return None
    out: dict[str, Any] = {"matched": bool(summary.get("matched")), "populations": []}
    entries = []
    if summary.get("matched"):
        entries.append(("trial", "enrolled population (cohort.match)", summary))
    for name, population in (summary.get("populations") or {}).items():
        entries.append((name, population["label"], population))
    for name, label, s in entries:
        cert = tables.get(name)
        cols = [c for c in CERTIFICATE_COLUMNS if cert is not None and c in cert]
        facts = {
            "baseline table": f"{s.get('table')} (n = {s.get('n_source')}, role {s.get('role')})",
            "source": s.get("citation"),
            "method": s.get("method"),
            "figures within their intervals": f"{s.get('n_passed')} of {s.get('n_targets')}",
            "largest |standardised difference|": s.get("max_abs_smd"),
            "Kish effective n": s.get("kish_n"),
            "pass rule": s.get("pass_rule"),
        }
        entry = {
            "name": name,
            "label": label,
            "all_passed": bool(s.get("all_passed")),
            "facts": kv_table(facts, table_id=f"certificate-{name}-summary"),
            "table": table(cert[cols] if cols else None, table_id=f"certificate-{name}"),
        }
        if name in figures and Path(figures[name]).is_file():
            entry["figure"] = _fig.png_to_data_uri(figures[name])
        out["populations"].append(entry)
    return out


def populations(answers: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """§1 The question answered for each population, and where the answers differ."""
    if answers is None:
        return None
    comparison = answers["comparison"]
    differing = comparison[comparison["differs"]] if len(comparison) else comparison
    return {
        "comparison": table(comparison, table_id="populations-comparison"),
        "n_differing": int(len(differing)),
        "differing": [
            f"{r.endpoint} ({r.estimate_of}): {r.population} {r.value}"
            for r in differing.itertuples()
        ],
        "effective_n": kv_table(
            {k: f"{v:.0f}" for k, v in answers["effective_n"].items()},
            table_id="populations-effective-n",
        ),
        "representation": table(
            answers.get("representation"), table_id="populations-representation"
        ),
    }
