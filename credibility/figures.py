"""Figures of the credibility report, drawn with matplotlib's object API (Agg, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`fig_to_data_uri` turns it
into a base64 PNG ``data:`` URI so the HTML report is self-contained.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

__all__ = [
    "STATUS_COLOURS",
    "endpoint_distributions",
    "fig_to_data_uri",
    "gci_bars",
    "goal_status_chart",
    "png_to_data_uri",
    "subgroup_forest",
    "validation_forest",
]

#: Colours of the assessment statuses (colour-blind safe, Okabe-Ito palette).
STATUS_COLOURS = {"pass": "#009E73", "partial": "#E69F00", "fail": "#D55E00", "missing": "#999999"}
_ARM_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def _new(width: float = 7.0, height: float = 3.5) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fig_to_data_uri(fig: Figure, *, dpi: int = 110) -> str:
    """PNG ``data:`` URI of a figure (base64), for embedding in HTML.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to render.
    dpi : int, default 110
        Resolution.

    Returns
    -------
    str
        ``"data:image/png;base64,…"``.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_to_data_uri(path: str | Path) -> str:
    """``data:`` URI of a PNG file (raises OSError if it cannot be read)."""
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def endpoint_distributions(
    outcomes: xr.Dataset, endpoints: Sequence[str], *, bins: int = 30
) -> Figure:
    """Histograms of endpoints by arm, over simulations with ``status == 0``.

    Parameters
    ----------
    outcomes : xarray.Dataset
        Dims ``(arm, patient)``, with ``status`` and the float ``endpoints``.
    endpoints : sequence of str
        Endpoint variable names (units taken from their ``units`` attribute).
    bins : int, default 30
        Number of bins (shared across arms).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(endpoints)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = _new(3.2 * cols, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    ok = outcomes["status"].values == 0
    arms = [str(a) for a in outcomes["arm"].values]
    for ax, name in zip(axes, endpoints, strict=False):
        values = np.asarray(outcomes[name].values, dtype=float)
        good = ok & np.isfinite(values)
        if not good.any():
            ax.set_title(f"{name}: no valid values")
            continue
        edges = np.histogram_bin_edges(values[good], bins=bins)
        for i, arm in enumerate(arms):
            ax.hist(
                values[i][good[i]],
                bins=edges,
                alpha=0.55,
                color=_ARM_COLOURS[i % len(_ARM_COLOURS)],
                label=arm,
                histtype="stepfilled",  # one patch, not one per bin: the same look, drawn faster
            )
        ax.set_xlabel(f"{name} [{outcomes[name].attrs.get('units', '?')}]")
        ax.set_ylabel("patients")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    return fig


def validation_forest(table: pd.DataFrame) -> Figure:
    """Predicted vs observed for every comparator, as ratios to the observed value.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`credibility.validation.validate` (``observed``, ``observed_low``,
        ``observed_high``, ``predicted``, ``predicted_low``, ``predicted_high``, ``id``).

    Returns
    -------
    matplotlib.figure.Figure
        One row per comparator: observed (square, interval when reported) and predicted
        (circle, interval) divided by the observed value; 1 = agreement.
    """
    t = table.reset_index(drop=True)
    fig = _new(7.0, 0.9 + 0.28 * len(t))
    ax = fig.add_subplot()
    y = np.arange(len(t))[::-1]
    obs = t["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(obs != 0, obs, np.nan)
        pr = t["predicted"].to_numpy(float) / scale
        pr_lo = t["predicted_low"].to_numpy(float) / scale
        pr_hi = t["predicted_high"].to_numpy(float) / scale
        ob_lo = t["observed_low"].to_numpy(float) / scale
        ob_hi = t["observed_high"].to_numpy(float) / scale
    ax.hlines(y + 0.15, pr_lo, pr_hi, color="#0072B2")
    ax.plot(pr, y + 0.15, "o", color="#0072B2", label="virtual trial (95% CI)")
    ax.hlines(y - 0.15, ob_lo, ob_hi, color="#333333")
    ax.plot(np.ones_like(y, dtype=float), y - 0.15, "s", color="#333333", label="comparator")
    ax.axvline(1.0, color="#999999", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y, t["id"].astype(str).tolist(), fontsize="small")
    ax.set_xlabel("value / comparator value (log scale)")
    ax.legend(fontsize="small", loc="lower right")
    return fig


def subgroup_forest(subgroups: pd.DataFrame, endpoint: str) -> Figure:
    """Mean (with interval) of one endpoint in every subgroup level, by arm.

    Parameters
    ----------
    subgroups : pandas.DataFrame
        Output of :func:`credibility.tables.subgroup_table` (``subgroup``, ``level``, ``arm``,
        ``endpoint``, ``estimate``, ``ci_low``, ``ci_high``, ``unit``).
    endpoint : str
        Endpoint to show.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = subgroups[subgroups["endpoint"] == endpoint]
    labels = list(dict.fromkeys(zip(t["subgroup"], t["level"], strict=True)))
    arms = list(dict.fromkeys(t["arm"]))
    fig = _new(7.0, 0.9 + 0.3 * max(len(labels), 1))
    ax = fig.add_subplot()
    pos = {lab: len(labels) - 1 - i for i, lab in enumerate(labels)}
    width = 0.6 / max(len(arms), 1)
    for j, arm in enumerate(arms):
        s = t[t["arm"] == arm]
        yy = np.array([pos[(a, b)] for a, b in zip(s["subgroup"], s["level"], strict=True)])
        yy = yy - 0.3 + width * (j + 0.5)
        colour = _ARM_COLOURS[j % len(_ARM_COLOURS)]
        ax.hlines(yy, s["ci_low"], s["ci_high"], color=colour)
        ax.plot(s["estimate"], yy, "o", color=colour, label=arm, ms=4)
    ax.set_yticks([pos[lab] for lab in labels], [f"{a}: {b}" for a, b in labels], fontsize="small")
    unit = t["unit"].iloc[0] if len(t) else ""
    ax.set_xlabel(f"{endpoint} [{unit}]")
    ax.legend(fontsize="small")
    return fig


def gci_bars(gci_table: pd.DataFrame, *, goal_pct: float | None = None) -> Figure:
    """Fine-grid GCI (%) per quantity, with the plan's goal as a line.

    Parameters
    ----------
    gci_table : pandas.DataFrame
        ``GCIResult.to_frame()`` output (index: quantity; column ``gci_fine_pct``).
    goal_pct : float, optional
        Goal threshold (%), drawn as a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _new(7.0, 0.9 + 0.3 * len(gci_table))
    ax = fig.add_subplot()
    y = np.arange(len(gci_table))[::-1]
    ax.barh(y, gci_table["gci_fine_pct"].to_numpy(float), color="#0072B2")
    ax.set_yticks(y, [str(i) for i in gci_table.index], fontsize="small")
    ax.set_xlabel("GCI fine grid [%]")
    if goal_pct is not None:
        ax.axvline(goal_pct, color=STATUS_COLOURS["fail"], ls="--", label=f"goal {goal_pct:g} %")
        ax.legend(fontsize="small")
    return fig


def goal_status_chart(assessment: pd.DataFrame) -> Figure:
    """One coloured cell per credibility factor: pass / partial / fail / missing.

    Parameters
    ----------
    assessment : pandas.DataFrame
        Output of :func:`credibility.plan.assess`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _new(7.0, 0.6 + 0.26 * len(assessment))
    ax = fig.add_subplot()
    y = np.arange(len(assessment))[::-1]
    colours = [STATUS_COLOURS.get(s, "#999999") for s in assessment["status"]]
    ax.barh(y, np.ones_like(y), color=colours)
    for yi, status in zip(y, assessment["status"], strict=True):
        ax.text(0.5, yi, status, ha="center", va="center", color="white", fontsize="small")
    ax.set_yticks(y, [str(f).replace("_", " ") for f in assessment["factor"]], fontsize="small")
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    return fig
