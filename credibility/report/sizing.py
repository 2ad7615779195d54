"""Report sections of the trial's size: the sequential stop, and the real trial's size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from credibility import figures as _fig

from .html import kv_table, table

__all__ = ["planning", "sequence_figure", "sizing"]


def sequence_figure(summary: Mapping[str, Any]):
    """The confidence sequence against the patients simulated, the fixed-n interval at each
    look beside it, and the target half-width around the final estimate."""
    looks = pd.DataFrame(summary["looks"])
    fig = _fig._new(7.0, 3.6)
    ax = fig.subplots()
    n = looks["n"].to_numpy(dtype=float)
    low, high = looks["low"].to_numpy(dtype=float), looks["high"].to_numpy(dtype=float)
    finite = np.isfinite(looks["half_width"].to_numpy(dtype=float))
    ax.fill_between(n[finite], low[finite], high[finite], alpha=0.3, label="confidence sequence")
    ax.plot(n, looks["naive_low"], "k:", lw=1, label="fixed-n interval (not anytime-valid)")
    ax.plot(n, looks["naive_high"], "k:", lw=1)
    ax.plot(n, looks["estimate"], "o-", ms=3, label="estimate")
    last = looks.iloc[-1]
    target = summary["half_width_target"]
    ax.axhspan(
        last["estimate"] - target, last["estimate"] + target, color="tab:green", alpha=0.12,
        label=f"target half-width ±{target:g} around the final estimate",
    )  # fmt: skip
    ax.axvline(summary["stop"]["n"], color="tab:red", lw=1, label="stop")
    ax.set_xlabel("patients simulated")
    ax.set_ylabel(f"paired difference ({summary['unit']})")
    ax.set_title(f"{summary['endpoint']}: {' − '.join(summary['contrast'])}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def sizing(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """§1 Why and where the trial stopped, against fixed designs; common random numbers."""
    if summary is None:
        return None
    stop, fixed, crn = summary["stop"], summary["fixed"], summary["crn"]
    facts = {
        "endpoint": f"{summary['endpoint']} ({summary['kind']}), {' − '.join(summary['contrast'])}",
        "patients counted": summary.get("where") or "all",
        "target": f"half-width ≤ {summary['half_width_target']:g} {summary['unit']} "
        f"at {100 * summary['confidence']:g} % (anytime-valid)",
        "sequence": summary.get("method"),
        "waves": f"first look at {summary['n_min']}, then every {summary['wave']}, at most "
        f"{summary['n_max']} patients",
        "stopped": stop["text"],
        "fixed design sized up front": f"{fixed['up_front_patients']:,} patients "
        f"({fixed['up_front_basis']}); saved: {summary['saved_vs_up_front']:,}",
        "fixed design knowing the SD": (
            f"{fixed['oracle_patients']} patients ({fixed['oracle_basis']})"
            if fixed.get("oracle_patients")
            else "not estimable (no spread in the patients counted)"
        ),
        "budget n_max": f"{summary['n_max']:,} patients; saved: {summary['saved_vs_n_max']:,}",
        "common random numbers": (
            f"Var(a) + Var(b) = {crn.get('var_a', float('nan')) + crn.get('var_b', float('nan')):.4g}"
            f" vs Var(b − a) = {crn.get('var_paired_difference', float('nan')):.4g}: unpaired "
            f"arms would need {crn['ratio']:.3g} times the patients for the same precision "
            f"(within-patient correlation {crn.get('correlation', float('nan')):.3f})"
        ),
    }
    cert = summary.get("certificate")
    if cert:
        facts["baseline table, sized cohort"] = (
            f"{cert['n_passed']} of {cert['n_targets']} figures of {cert['table']} within their "
            f"intervals in the {cert['n_patients']} patients kept (section 8: the pool's)"
        )
    looks = pd.DataFrame(summary["looks"]).drop(columns=["method"], errors="ignore")
    return {
        "facts": kv_table(facts, table_id="sizing-summary"),
        "looks": table(looks, table_id="sizing-looks"),
        "figure": _fig.fig_to_data_uri(sequence_figure(summary)),
        "source": summary.get("source"),
    }


def planning(rows: pd.DataFrame | None) -> dict[str, Any] | None:
    """§1 The real trial's size from the virtual result, with its uncertainty."""
    if rows is None or rows.empty:
        return None
    return {"table": table(rows, table_id="planning-table")}
