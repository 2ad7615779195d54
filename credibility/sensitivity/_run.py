"""Driver with a convergence/stopping rule, and figures."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from credibility._problem import Problem
from credibility.sensitivity import delta, fast, morris, pawn, pce, rbd, shapley, sobol

__all__ = ["DEFAULT_INDICES", "METHODS", "plot_convergence", "plot_indices", "run"]

#: Method name -> module with ``sample`` and ``analyze``.
METHODS: dict[str, ModuleType] = {
    "sobol": sobol,
    "morris": morris,
    "fast": fast,
    "rbd": rbd,
    "delta": delta,
    "pawn": pawn,
    "shapley": shapley,
    "pce": pce,
}
#: Indices watched by the stopping rule (and plotted) by default.
DEFAULT_INDICES: dict[str, tuple[str, ...]] = {
    "sobol": ("S1", "ST"),
    "morris": ("mu_star",),
    "fast": ("S1", "ST"),
    "rbd": ("S1",),
    "delta": ("delta",),
    "pawn": ("PAWN",),
    "shapley": ("Sh",),
    "pce": ("S1", "ST"),
}

Evaluate = Callable[[np.ndarray], Mapping[str, Any]]


def _module(method: str) -> ModuleType:
    if method not in METHODS:
        raise ValueError(f"unknown sensitivity method {method!r}; allowed: {', '.join(METHODS)}")
    return METHODS[method]


def _concat(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    if set(old) != set(new):
        raise ValueError(f"evaluate returned outputs {sorted(new)}, before {sorted(old)}")
    out = {}
    for k in old:
        if isinstance(old[k], xr.DataArray):
            out[k] = xr.concat([old[k], new[k]], dim=old[k].dims[0])
        else:
            out[k] = np.concatenate([np.asarray(old[k]), np.asarray(new[k])], axis=0)
    return out


def run(
    problem: Problem,
    evaluate: Evaluate,
    *,
    method: str,
    n: int,
    seed: int | None,
    ci_target: float | None = None,
    n_max: int | None = None,
    indices: Sequence[str] | None = None,
    dims: Sequence[str] | None = None,
    sample_options: Mapping[str, Any] | None = None,
    analyze_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Sample, evaluate and analyse, doubling ``n`` until the confidence intervals are narrow.

    Parameters
    ----------
    problem : Problem
    evaluate : callable
        ``evaluate(X) -> {output: array (n_rows, ...)}``; the only way the model is called.
    method : {"sobol", "morris", "fast", "rbd", "delta", "pawn", "shapley", "pce"}
    n : int
        Initial sample size, in the method's own unit (base size for sobol, trajectories for
        morris, points per curve for fast, rows for rbd/delta/pawn/pce, outer draws or
        permutations for shapley).
    seed : int or None
        Seed of sampling and bootstrap.
    ci_target : float or None
        Stop when the full width (``2 * *_conf``) of every watched index, for every output,
        parameter and extra-dim element, is below this; ``None`` runs one step at ``n``.
    n_max : int or None
        Largest ``n`` tried (default ``16 n``); the run stops there even if not converged.
    indices : sequence of str, optional
        Indices watched; default :data:`DEFAULT_INDICES` of the method.
    dims : sequence of str, optional
        Names of extra output axes (see :func:`credibility.sensitivity.sobol.analyze`).
    sample_options, analyze_options : mapping, optional
        Extra keywords of the method's ``sample`` / ``analyze``; sample options that
        ``analyze`` also takes (e.g. ``calc_second_order``, ``permutations``) are passed to both.

    Returns
    -------
    xarray.Dataset
        The analysis at the last step, plus the history: ``<index>_history`` and
        ``<index>_conf_history`` with a leading dim ``step``, coordinates ``n`` and
        ``n_evaluations`` (cumulative model evaluations) along ``step``, and attrs
        ``converged`` (0/1), ``ci_target``, ``total_evaluations``. Rows already evaluated are
        reused when the larger design starts with the smaller one (sobol, pce, delta, pawn,
        shapley).
    """
    mod = _module(method)
    watched = tuple(indices or DEFAULT_INDICES[method])
    sample_options = dict(sample_options or {})
    analyze_options = dict(analyze_options or {})
    # design options that analyze must repeat (calc_second_order, num_levels, M, n_inner, …)
    accepted = inspect.signature(mod.analyze).parameters
    for k, v in sample_options.items():
        if k in accepted:
            analyze_options.setdefault(k, v)
    n_max = int(n_max or 16 * n)
    X_prev: np.ndarray | None = None
    Y: dict[str, Any] = {}
    total = 0
    history: list[xr.Dataset] = []
    sizes, evals = [], []
    converged = False
    n_k = int(n)
    while True:
        X = mod.sample(problem, n_k, seed=seed, **sample_options)
        if X_prev is not None and len(X) > len(X_prev) and np.array_equal(X[: len(X_prev)], X_prev):
            new = dict(evaluate(X[len(X_prev) :]))
            Y = _concat(Y, new)
            total += len(X) - len(X_prev)
        else:
            Y = dict(evaluate(X))
            total += len(X)
        ds = mod.analyze(problem, X, Y, seed=seed, dims=dims, **analyze_options)
        missing = [k for k in watched if k not in ds or f"{k}_conf" not in ds]
        if missing:
            raise ValueError(
                f"{method}: indices {missing} have no confidence interval; allowed: "
                + ", ".join(k for k in ds.data_vars if f"{k}_conf" in ds)
            )
        history.append(ds[[*watched, *(f"{k}_conf" for k in watched)]])
        sizes.append(n_k)
        evals.append(total)
        if ci_target is not None:
            widths = np.concatenate([2.0 * ds[f"{k}_conf"].values.ravel() for k in watched])
            finite = widths[np.isfinite(widths)]
            converged = finite.size > 0 and bool(np.all(finite < ci_target))
        if ci_target is None or converged or 2 * n_k > n_max:
            break
        X_prev = X
        n_k *= 2
    hist = xr.concat(history, dim="step", join="outer")
    hist = hist.rename({k: f"{k}_history" for k in hist.data_vars})
    hist = hist.assign_coords(step=np.arange(len(sizes)), n=("step", sizes))
    hist = hist.assign_coords(n_evaluations=("step", evals))
    for k in watched:
        hist[f"{k}_history"].attrs = dict(ds[k].attrs)
        hist[f"{k}_conf_history"].attrs = dict(ds[f"{k}_conf"].attrs)
    out = xr.merge([ds, hist], compat="override", join="outer")
    out.attrs = dict(ds.attrs)
    out.attrs |= {
        "converged": int(converged),
        "ci_target": float("nan") if ci_target is None else float(ci_target),
        "watched_indices": list(watched),
        "total_evaluations": total,
        "stopping_rule": "double n until 2*conf < ci_target for every watched index, or n_max",
    }
    return out


def _watched(ds: xr.Dataset, indices: Sequence[str] | None) -> tuple[str, ...]:
    if indices:
        return tuple(indices)
    if "watched_indices" in ds.attrs:
        return tuple(ds.attrs["watched_indices"])
    return DEFAULT_INDICES[ds.attrs["method"]]


def _check_extra(da: xr.DataArray, keep: Sequence[str]) -> None:
    extra = [d for d in da.dims if d not in keep]
    if extra:
        raise ValueError(
            f"plot: select one element of the extra dims {extra} first, e.g. ds.isel({extra[0]}=0)"
        )


def plot_indices(ds: xr.Dataset, path: str, *, indices: Sequence[str] | None = None) -> None:
    """Bar chart of indices per output with confidence-interval whiskers, saved to ``path``.

    Drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas; pyplot and the global
    backend are not touched).

    Parameters
    ----------
    ds : xarray.Dataset
        Result of an ``analyze`` or :func:`run` (extra dims must be selected away first).
    path : str
        Output file (format from the suffix, e.g. ``.png``, ``.svg``).
    indices : sequence of str, optional
        Default: the method's :data:`DEFAULT_INDICES`.
    """
    watched = _watched(ds, indices)
    for k in watched:
        _check_extra(ds[k], ("output", "parameter"))
    outputs = list(ds["output"].values)
    params = list(ds["parameter"].values)
    fig = Figure(figsize=(1.2 + 0.9 * len(params), 2.6 * len(outputs)))
    axes = fig.subplots(len(outputs), 1, squeeze=False)
    width = 0.8 / len(watched)
    x = np.arange(len(params))
    for ax, out in zip(axes[:, 0], outputs, strict=False):
        for j, k in enumerate(watched):
            val = ds[k].sel(output=out).values
            err = ds[f"{k}_conf"].sel(output=out).values if f"{k}_conf" in ds else None
            ax.bar(
                x + (j - (len(watched) - 1) / 2) * width, val, width, yerr=err, capsize=3, label=k
            )
        ax.set_xticks(x, params, rotation=30, ha="right")
        ax.set_title(f"{out} — {ds.attrs.get('method', '')}")
        ax.axhline(0.0, color="0.5", lw=0.5)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def plot_convergence(ds: xr.Dataset, path: str, *, indices: Sequence[str] | None = None) -> None:
    """Indices vs cumulative model evaluations with CI bands (from :func:`run`), saved to ``path``."""
    watched = _watched(ds, indices)
    if f"{watched[0]}_history" not in ds:
        raise ValueError("plot_convergence needs the result of credibility.sensitivity.run")
    for k in watched:
        _check_extra(ds[f"{k}_history"], ("step", "output", "parameter"))
    outputs = list(ds["output"].values)
    n_eval = ds["n_evaluations"].values
    fig = Figure(figsize=(4.5 * len(watched), 3.0 * len(outputs)))
    axes = fig.subplots(len(outputs), len(watched), squeeze=False)
    for r, out in enumerate(outputs):
        for c, k in enumerate(watched):
            ax = axes[r, c]
            for p in ds["parameter"].values:
                v = ds[f"{k}_history"].sel(output=out, parameter=p).values
                e = ds[f"{k}_conf_history"].sel(output=out, parameter=p).values
                (line,) = ax.plot(n_eval, v, marker="o", ms=3, label=str(p))
                ax.fill_between(n_eval, v - e, v + e, color=line.get_color(), alpha=0.2)
            ax.set_xscale("log")
            ax.set_xlabel("model evaluations")
            ax.set_title(f"{out}: {k}")
            ax.legend(fontsize="x-small")
    target = ds.attrs.get("ci_target", float("nan"))
    fig.suptitle(
        f"{ds.attrs.get('method', '')}: CI target (full width) {target:g}, "
        f"converged={bool(ds.attrs.get('converged', 0))}"
    )
    fig.tight_layout()
    fig.savefig(path)
