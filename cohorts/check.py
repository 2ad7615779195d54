"""Checks of a generated cohort against its population spec.

All generated statistics are weighted by ``sampling_weight`` (self-normalised), so oversampled
subgroups do not bias them; the effective sample size is Kish's ``(sum w)^2 / sum w^2``.

References
----------
Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between
treatment groups in propensity-score matched samples. Stat Med 2009;28:3083-3107.
doi:10.1002/sim.3697 (standardised mean differences for means and proportions).
Fieller EC, Hartley HO, Pearson ES. Tests for rank correlation coefficients. I.
Biometrika 1957;44:470-481 (variance 1.06/(n-3) of Fisher's z for Spearman's rho).
Kish L. Survey Sampling. Wiley, 1965 (effective sample size).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .spec import PopulationSpec, load_spec
from .weighted import (
    cohort_weights,
    kish_n,
    weighted_corr,
    weighted_mean,
    weighted_quantile,
    weighted_sd,
)

__all__ = ["QUANTILES", "compare_to_target", "plot_check"]

#: Quantile levels compared for every continuous sampled variable.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

_COLUMNS = [
    "variable",
    "subgroup",
    "statistic",
    "target",
    "generated",
    "difference",
    "smd",
    "se",
    "z",
    "n",
    "n_eff",
    "units",
    "source",
]


class _Rows:
    def __init__(self):
        self.rows: list[dict] = []

    def add(
        self, variable, subgroup, statistic, target, generated, *, smd, se, n, n_eff, units, source
    ):
        diff = generated - target
        z = diff / se if se and np.isfinite(se) and se > 0 else float("nan")
        self.rows.append(
            dict(
                variable=variable,
                subgroup=subgroup,
                statistic=statistic,
                target=float(target),
                generated=float(generated),
                difference=float(diff),
                smd=float(smd),
                se=float(se),
                z=float(z),
                n=int(n),
                n_eff=float(n_eff),
                units=units,
                source=source,
            )
        )


def _continuous_rows(rows, name, units, source, marginal, x, w, subgroup):
    n, n_eff = len(x), kish_n(w)
    if n < 2:
        return
    t_mean, t_sd = marginal.mean(), marginal.sd()
    g_mean, g_sd = weighted_mean(x, w), weighted_sd(x, w)
    pooled = math.sqrt((t_sd**2 + g_sd**2) / 2.0)
    rows.add(
        name,
        subgroup,
        "mean",
        t_mean,
        g_mean,
        smd=(g_mean - t_mean) / pooled,
        se=g_sd / math.sqrt(n_eff),
        n=n,
        n_eff=n_eff,
        units=units,
        source=source,
    )
    rows.add(
        name,
        subgroup,
        "sd",
        t_sd,
        g_sd,
        smd=float("nan"),
        se=g_sd / math.sqrt(2.0 * max(n_eff - 1.0, 1.0)),
        n=n,
        n_eff=n_eff,
        units=units,
        source=source,
    )
    t_q = np.atleast_1d(marginal.quantile(np.asarray(QUANTILES)))
    g_q = weighted_quantile(x, w, np.asarray(QUANTILES))
    dens = np.atleast_1d(marginal.pdf(t_q))
    for q, tq, gq, f in zip(QUANTILES, t_q, g_q, dens, strict=True):
        se = math.sqrt(q * (1 - q) / n_eff) / f if f > 0 else float("nan")
        rows.add(
            name,
            subgroup,
            f"q{round(q * 100):02d}",
            tq,
            gq,
            smd=(gq - tq) / t_sd,
            se=se,
            n=n,
            n_eff=n_eff,
            units=units,
            source=source,
        )


def _proportion_row(rows, variable, subgroup, statistic, target, hit, w, source):
    n, n_eff = len(hit), kish_n(w)
    if n == 0:
        return
    g = weighted_mean(hit.astype(float), w)
    denom = math.sqrt((g * (1 - g) + target * (1 - target)) / 2.0)
    rows.add(
        variable,
        subgroup,
        statistic,
        target,
        g,
        smd=(g - target) / denom if denom > 0 else float("nan"),
        se=math.sqrt(target * (1 - target) / n_eff),
        n=n,
        n_eff=n_eff,
        units="1",
        source=source,
    )


def _correlation_row(rows, a, b, kind, subgroup, target, x, y, w, source):
    n, n_eff = len(x), kish_n(w)
    if n < 4:
        return
    g = weighted_corr(x, y, w, kind)
    factor = 1.06 if kind == "spearman" else 1.0
    se_z = math.sqrt(factor / (n_eff - 3.0))
    # z column: difference of Fisher z-transforms in units of its standard error.
    t_clip = float(np.clip(target, -0.999999, 0.999999))
    g_clip = float(np.clip(g, -0.999999, 0.999999))
    rows.add(
        f"{a}~{b}",
        subgroup,
        f"correlation_{kind}",
        target,
        g,
        smd=float("nan"),
        se=(1 - g_clip**2) * se_z,
        n=n,
        n_eff=n_eff,
        units="1",
        source=source,
    )
    rows.rows[-1]["z"] = (math.atanh(g_clip) - math.atanh(t_clip)) / se_z


def compare_to_target(spec: PopulationSpec | str | Path | dict, ds: xr.Dataset) -> pd.DataFrame:
    """Target vs generated statistics of a cohort.

    Rows, in this order:

    - every sampled continuous variable (per level of ``given``, else over everyone): ``mean``,
      ``sd``, quantiles ``q05 q25 q50 q75 q95``; targets are the spec's distribution;
    - every categorical: ``proportion`` of each category;
    - every pair of every copula block (per level): ``correlation_spearman`` or
      ``correlation_pearson`` (the latter is the normal-score correlation, equal to Pearson's r
      for normal marginals);
    - every explicit entry of the spec's ``targets`` (derived variables, subgroup proportions,
      correlations with derived variables).

    Targets describe the population before inclusion/exclusion criteria, so truncating criteria
    show up as differences.

    Parameters
    ----------
    spec : PopulationSpec, path or mapping
        The spec the cohort was generated from.
    ds : xarray.Dataset
        A cohort from :func:`cohorts.sample` or :func:`cohorts.write_cohort`.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, subgroup, statistic, target, generated, difference`` (generated -
        target), ``smd`` (standardised difference: mean, by the pooled SD; proportion, by the
        pooled binomial SD (Austin 2009); quantile, by the target SD; NaN for SD and
        correlations), ``se`` (standard error of the generated statistic), ``z``
        (difference / se; for correlations the Fisher-z difference over its SE), ``n``,
        ``n_eff`` (Kish), ``units``, ``source`` (of the target). Units of target, generated
        and difference are those in ``units``.
    """
    spec = load_spec(spec)
    w_all = cohort_weights(ds)
    data = {name: np.asarray(ds[name].values) for name in spec.names if name in ds}
    rows = _Rows()
    for name, var in spec.variables.items():
        x = data[name]
        if var.given is None:
            groups = [(None, "all", np.ones(len(x), dtype=bool))]
        else:
            levels = data[var.given]
            groups = [
                (lvl, f"{var.given} == '{lvl}'", levels == code)
                for code, lvl in enumerate(spec.variables[var.given].categories)
            ]
        for lvl, label, mask in groups:
            marginal = var.marginals[lvl]
            if var.is_categorical:
                for code, cat in enumerate(var.categories):
                    _proportion_row(
                        rows,
                        name,
                        label,
                        f"proportion[{cat}]",
                        marginal.params["probabilities"][code],
                        x[mask] == code,
                        w_all[mask],
                        var.source,
                    )
            else:
                _continuous_rows(
                    rows, name, var.units, var.source, marginal, x[mask], w_all[mask], label
                )
    for block in spec.copulas:
        if block.given is None:
            groups = [(None, "all", np.ones(len(w_all), dtype=bool))]
        else:
            levels = data[block.given]
            groups = [
                (lvl, f"{block.given} == '{lvl}'", levels == code)
                for code, lvl in enumerate(spec.variables[block.given].categories)
            ]
        for lvl, label, mask in groups:
            target = block.target[lvl]
            for i, a in enumerate(block.variables):
                for j in range(i + 1, len(block.variables)):
                    b = block.variables[j]
                    _correlation_row(
                        rows,
                        a,
                        b,
                        block.kind,
                        label,
                        target[i, j],
                        data[a][mask],
                        data[b][mask],
                        w_all[mask],
                        block.source,
                    )
    for t in spec.targets:
        mask = (
            np.broadcast_to(np.asarray(t.subgroup_func(data), dtype=bool), w_all.shape)
            if t.subgroup_func is not None
            else np.ones(len(w_all), dtype=bool)
        )
        label = t.subgroup or "all"
        w = w_all[mask]
        if t.statistic == "proportion":
            hit = np.broadcast_to(np.asarray(t.where_func(data), dtype=bool), w_all.shape)
            _proportion_row(rows, t.where, label, "proportion", t.value, hit[mask], w, t.source)
            continue
        x = np.asarray(data[t.variable], dtype=float)[mask]
        units = ds[t.variable].attrs.get("units", "")
        n, n_eff = len(x), kish_n(w)
        if n < 4:
            continue
        if t.statistic == "correlation":
            y = np.asarray(data[t.with_], dtype=float)[mask]
            _correlation_row(rows, t.variable, t.with_, t.kind, label, t.value, x, y, w, t.source)
            continue
        g_mean, g_sd = weighted_mean(x, w), weighted_sd(x, w)
        if t.statistic == "mean":
            sd_targets = [
                s.value
                for s in spec.targets
                if s.statistic == "sd" and s.variable == t.variable and s.subgroup == t.subgroup
            ]
            pooled = math.sqrt((g_sd**2 + (sd_targets[0] if sd_targets else g_sd) ** 2) / 2.0)
            rows.add(
                t.variable,
                label,
                "mean",
                t.value,
                g_mean,
                smd=(g_mean - t.value) / pooled,
                se=g_sd / math.sqrt(n_eff),
                n=n,
                n_eff=n_eff,
                units=units,
                source=t.source,
            )
        elif t.statistic == "sd":
            rows.add(
                t.variable,
                label,
                "sd",
                t.value,
                g_sd,
                smd=float("nan"),
                se=g_sd / math.sqrt(2.0 * max(n_eff - 1.0, 1.0)),
                n=n,
                n_eff=n_eff,
                units=units,
                source=t.source,
            )
        else:  # quantile
            gq = float(weighted_quantile(x, w, t.q))
            rows.add(
                t.variable,
                label,
                f"q{round(t.q * 100):02d}",
                t.value,
                gq,
                smd=(gq - t.value) / g_sd if g_sd > 0 else float("nan"),
                se=float("nan"),
                n=n,
                n_eff=n_eff,
                units=units,
                source=t.source,
            )
    return pd.DataFrame(rows.rows, columns=_COLUMNS)


def plot_check(spec: PopulationSpec | str | Path | dict, ds: xr.Dataset, path: str | Path) -> Path:
    """Figure of generated vs target marginals and correlation matrices, written as PNG.

    One panel per variable: weighted histogram of the cohort with the target density (for
    sampled variables with ``given``, the mixture over levels with the spec's level
    probabilities) or target proportions (categoricals) and any explicit mean target; then one
    panel per copula block and level with the generated correlations below the diagonal and
    the targets above it. Uses matplotlib's Agg canvas (no display, no global pyplot state).

    Parameters
    ----------
    spec : PopulationSpec, path or mapping
    ds : xarray.Dataset
        The cohort.
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = load_spec(spec)
    w = cohort_weights(ds)
    names = [n for n in spec.names if n in ds]
    blocks = [(b, lvl) for b in spec.copulas for lvl in b.target]
    n_panels = len(names) + len(blocks)
    ncols = 4
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    for ax, name in zip(axes, names, strict=False):
        x = np.asarray(ds[name].values)
        units = ds[name].attrs.get("units", "")
        var = spec.variables.get(name)
        if var is not None and var.is_categorical:
            cats = var.categories
            gen = [float(np.sum(w[x == c]) / np.sum(w)) for c in range(len(cats))]
            pos = np.arange(len(cats))
            ax.bar(pos - 0.2, gen, width=0.4, label="generated")
            if var.given is None:
                ax.bar(
                    pos + 0.2,
                    var.marginals[None].params["probabilities"],
                    width=0.4,
                    label="target",
                )
            ax.set_xticks(pos, cats)
            ax.set_ylabel("proportion")
        else:
            x = x.astype(float)
            lo, hi = np.nanquantile(x, [0.001, 0.999])
            ax.hist(
                x,
                bins=60,
                range=(lo, hi),
                weights=w,
                density=True,
                alpha=0.6,
                label="generated",
                histtype="stepfilled",  # one patch, not one per bin: the same look, drawn faster
            )
            if var is not None:
                grid = np.linspace(lo, hi, 300)
                if var.given is None:
                    dens = var.marginals[None].pdf(grid)
                else:
                    parent = spec.variables[var.given].marginals[None].params
                    dens = sum(
                        p * var.marginals[lvl].pdf(grid)
                        for lvl, p in zip(
                            parent["categories"], parent["probabilities"], strict=True
                        )
                    )
                ax.plot(grid, dens, color="k", lw=1.2, label="target")
            for t in spec.targets:
                if t.statistic == "mean" and t.variable == name and t.subgroup is None:
                    ax.axvline(t.value, color="k", ls="--", lw=1.0, label="target mean")
            ax.set_ylabel("density")
        ax.set_title(name, fontsize=9)
        if var is None or not var.is_categorical:
            ax.set_xlabel(units)
        ax.legend(fontsize=7)
    data = {n: np.asarray(ds[n].values) for n in names}
    for ax, (block, lvl) in zip(axes[len(names) :], blocks, strict=False):
        k = len(block.variables)
        mask = np.ones(len(w), dtype=bool)
        if lvl is not None:
            code = spec.variables[block.given].categories.index(lvl)
            mask = data[block.given] == code
        mat = np.array(block.target[lvl], dtype=float)
        for i in range(k):
            for j in range(i):
                mat[i, j] = weighted_corr(
                    data[block.variables[i]][mask].astype(float),
                    data[block.variables[j]][mask].astype(float),
                    w[mask],
                    block.kind,
                )
        im = ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu_r")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7)
        short = [v[:12] for v in block.variables]
        ax.set_xticks(range(k), short, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(k), short, fontsize=7)
        where = f" | {block.given}={lvl}" if lvl is not None else ""
        ax.set_title(f"{block.kind}{where}\nlower: generated, upper: target", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{spec.title}: generated (n={ds.sizes['patient']}) vs target", fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
