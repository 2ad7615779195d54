"""Matching a virtual cohort to a target table: reweighting, selection or a refitted spec.

=========  ==================================================================================
method     what it returns
=========  ==================================================================================
weights    The same patients; ``sampling_weight`` multiplied by entropy-balancing weights
           (Hainmueller 2012; :mod:`cohorts.balance`) that meet every figure's moment
           condition exactly, each matching weight bounded by ``max_ratio`` times the
           patient's base weight (the bound is a choice, not a literature figure: it keeps
           the Kish effective size at least ``n / max_ratio`` and the ``select`` acceptance
           rate at least ``1 / max_ratio`` for equal base weights).
select     An unweighted cohort of ``size`` patients chosen from the candidates by
           acceptance-rejection (Allen et al. 2016; Rieger et al. 2018): candidate ``i`` is
           accepted with probability ``w_i / max w`` (``w`` = base x entropy-balancing
           weights, the target-to-candidate density ratio), the first ``size`` accepted in
           patient order are kept.
fit        A cohort *generated* from the population spec with its parameters refitted to the
           targets (:func:`cohorts.fit_spec`).
=========  ==================================================================================

A generated cohort's ``sampling_weight`` corrects for oversampling; the matching weights
multiply it (``weights``), or are used up by the selection (``select``: weights 1).
Infeasible targets - contradicting each other, or outside what the candidates can reach
within the bounds - raise one :class:`~cohorts.errors.InfeasibleTargetsError` naming the
targets the nearest achievable cohort misses and its largest standardised difference.

References
----------
Allen RJ, Rieger TR, Musante CJ. Efficient generation and selection of virtual populations
in quantitative systems pharmacology models. CPT Pharmacometrics Syst Pharmacol
2016;5:140-146. doi:10.1002/psp4.12063
Rieger TR, Allen RJ, Bystricky L, et al. Improving the generation and selection of virtual
populations in quantitative systems pharmacology models. Prog Biophys Mol Biol
2018;139:15-22. doi:10.1016/j.pbiomolbio.2018.06.002
Hainmueller J. Entropy balancing for causal effects. Political Analysis 2012;20:25-46.
doi:10.1093/pan/mpr025
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._random import patient_keys, uniforms
from .balance import entropy_balance
from .certificate import certificate, write_certificate
from .errors import InfeasibleTargetsError, MatchError
from .evaluate import BoundTargets, bind
from .intervals import z_value
from .targets import TargetTable, load_targets
from .weighted import cohort_weights

__all__ = ["DEFAULT_MAX_RATIO", "METHODS", "MatchResult", "infeasible_error", "match"]

METHODS = ("weights", "select", "fit")
#: Default bound of a matching weight relative to the patient's base weight (a choice).
DEFAULT_MAX_RATIO = 20.0
#: Counter word of the selection stream: generation uses attempts 0 ... MAX_ATTEMPTS.
SELECTION_ATTEMPT = 2**32 - 1
#: Ridges of the relaxed balancing (interval units) tried in turn when the targets cannot be
#: met exactly: the first meeting every interval is used; the last gives the nearest cohort.
_RELAXED_RIDGES = (1.0, 0.1, 0.01)


@dataclass(frozen=True)
class MatchResult:
    """A matched cohort, its certificate and a summary of the matching.

    Attributes
    ----------
    cohort : xarray.Dataset
        The matched cohort (dim ``patient``).
    certificate : pandas.DataFrame
        :func:`cohorts.certificate` of the cohort (summary in ``certificate.attrs``).
    summary : dict
        The certificate's summary plus the method's own numbers (JSON-serialisable).
    """

    cohort: xr.Dataset
    certificate: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    def write(self, store: str | Path, certificate_dir: str | Path | None = None) -> None:
        """Write the cohort to a zarr store and, if asked, the certificate files
        (:func:`cohorts.write_certificate`) into ``certificate_dir``.

        The cohort is loaded into memory first, so ``store`` may be the very store the
        candidates were read from (it is overwritten); chunks of
        :data:`cohorts.sampling.DEFAULT_BATCH_SIZE` patients, as :func:`cohorts.write_cohort`
        writes.
        """
        from .sampling import DEFAULT_BATCH_SIZE

        cohort = self.cohort.load().drop_encoding()
        chunks = (max(1, min(cohort.sizes["patient"], DEFAULT_BATCH_SIZE)),)
        encoding = {name: {"chunks": chunks} for name in cohort.variables}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            cohort.to_zarr(str(store), mode="w", consolidated=True, encoding=encoding)
        if certificate_dir is not None:
            write_certificate(self.certificate, certificate_dir)


def _moment_matrix(bound: BoundTargets) -> tuple[np.ndarray, list[int]]:
    """The moment conditions as an (n patients, k) matrix, and their statistics' indices."""
    matrix = np.empty((bound.n_patients, bound.n_moments))
    index = []
    for k, (j, c) in enumerate(bound.moments()):
        matrix[:, k] = c
        index.append(j)
    return matrix, index


def _halfwidths(bound: BoundTargets, index: list[int], q: np.ndarray) -> np.ndarray:
    """Half-width of each figure's interval in the units of its moment condition, times the
    subgroup's base share: residuals on this scale are distances in interval units."""
    z = z_value(bound.table.confidence)
    out = []
    for j in index:
        s = bound.statistics[j]
        half = (s.ci_high - s.ci_low) / 2.0
        if s.statistic == "sd":
            half *= 2.0 * s.value
        elif s.level is not None:
            half = z * math.sqrt(s.level * (1.0 - s.level) / s.n)
        elif s.statistic == "correlation":
            moments = {
                t.variable: t.sd
                for t in bound.statistics
                if t.statistic == "mean" and t.subgroup == s.subgroup
            }
            half *= moments.get(s.variable, 1.0) * moments.get(s.with_, 1.0)
        mask = bound.masks[j]
        share = 1.0 if mask is None else float(q[mask].sum() / q.sum())
        out.append(max(half * share, 1e-300))
    return np.asarray(out)


def infeasible_error(
    table: TargetTable, cert: pd.DataFrame, what: str, remedy: str
) -> InfeasibleTargetsError:
    """The one error for targets no cohort of the method meets; ``cert`` is the nearest."""
    missed = cert[~cert["passed"]]
    smd = cert["smd"].abs()
    worst = float(smd.max()) if smd.notna().any() else math.nan
    parts = [
        f"{r.label}: achieved {r.achieved:.4g}, target {r.target:.4g} "
        f"[{r.ci_low:.4g}, {r.ci_high:.4g}], SMD {r.smd:+.3g}"
        for r in missed.itertuples(index=False)
    ]
    message = (
        f"{table.source_file}: {what}: the nearest achievable cohort misses {len(missed)} of "
        f"{len(cert)} targets ({'; '.join(parts)}); its largest |SMD| over all targets is "
        f"{worst:.3g}. The targets contradict each other or lie outside what the candidates "
        f"can reach; {remedy}"
    )
    return InfeasibleTargetsError(message, list(missed["label"]), worst, cert)


def balance_targets(
    ds: xr.Dataset, table: TargetTable, *, max_ratio: float, min_ratio: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Matching factors ``g`` (sum of base x g = sum of base) meeting every target.

    Exact entropy balancing first; if no bounded weights meet the conditions exactly, the
    relaxed problem (:mod:`cohorts.balance`, residuals in interval units) - accepted when its
    certificate passes every target, else :class:`InfeasibleTargetsError`.
    """
    bound = bind(table, ds)
    q = cohort_weights(ds)
    matrix, index = _moment_matrix(bound)
    halfwidths = _halfwidths(bound, index, q)
    res = entropy_balance(matrix, q, upper=max_ratio, lower=min_ratio)
    info = {"exact": res.converged, "iterations": res.iterations, "n_conditions": len(index)}
    if not res.converged:
        # continuation over the relaxed problems: the first whose weights pass every
        # target's interval is used, the last is the nearest achievable cohort
        theta = None
        for ridge in _RELAXED_RIDGES:
            matrix, _ = _moment_matrix(bound)
            res = entropy_balance(
                matrix, q, upper=max_ratio, lower=min_ratio, ridge=ridge,
                tolerances=halfwidths, theta0=theta,
            )  # fmt: skip
            theta = res.theta
            info["iterations"] += res.iterations
            cert = certificate(ds, table, weights=q * res.factor, method="weights")
            if cert["passed"].all():
                info["relaxation"] = ridge
                break
        else:
            raise infeasible_error(
                table,
                cert,
                f"no weights of the {ds.sizes['patient']} candidates bounded by max_ratio "
                f"{max_ratio:g} (a matching weight at most {max_ratio:g} times the base "
                "weight) meet every target",
                "check them, draw more or other candidates, or raise max_ratio",
            )
    g = res.factor
    info.update(
        max_ratio=max_ratio,
        min_ratio=min_ratio,
        largest_factor=float(g.max()),
        smallest_factor=float(g.min()),
    )
    return g, info


def _weights(ds, table, *, max_ratio, min_ratio, reference, seed) -> MatchResult:
    g, info = balance_targets(ds, table, max_ratio=max_ratio, min_ratio=min_ratio)
    base = cohort_weights(ds)
    cohort = ds.copy()
    old = ds["sampling_weight"].attrs if "sampling_weight" in ds else {}
    cohort["sampling_weight"] = xr.Variable(
        "patient",
        base * g,
        {
            "units": "1",
            "long_name": "sampling weight (oversampling x matching weight)",
            "source": f"{old.get('source', 'equal base weights')}; multiplied by the entropy-"
            f"balancing matching_weight to target table {table.name} ({table.citation})",
        },
    )
    cohort["matching_weight"] = xr.Variable(
        "patient",
        g,
        {
            "units": "1",
            "long_name": "entropy-balancing matching weight (relative to the base weight)",
            "source": f"cohorts.match(method='weights', max_ratio={max_ratio:g}) to "
            f"{table.name}: Hainmueller 2012, doi:10.1093/pan/mpr025",
        },
    )
    return _result(cohort, table, "weights", info, reference, seed)


def _selection_uniforms(ds: xr.Dataset, seed: int) -> np.ndarray:
    index = np.asarray(ds["patient"].values, dtype=np.int64)
    return uniforms(patient_keys(seed, index), SELECTION_ATTEMPT, 1)[:, 0]


def _select(ds, table, *, size, max_ratio, min_ratio, reference, seed) -> MatchResult:
    n = ds.sizes["patient"]
    size = table.n if size is None else int(size)
    if size < 1:
        raise MatchError(f"select: size must be a positive number of patients, got {size}")
    g, info = balance_targets(ds, table, max_ratio=max_ratio, min_ratio=min_ratio)
    w = cohort_weights(ds) * g
    accept_p = w / w.max()
    accepted = np.flatnonzero(_selection_uniforms(ds, seed) < accept_p)
    if accepted.size < size:
        rate = accepted.size / n
        need = math.ceil(size / max(float(accept_p.mean()), 1e-12))
        raise MatchError(
            f"select: {accepted.size} of {n} candidates accepted (rate {rate:.3%}), fewer "
            f"than the {size} asked for; draw at least about {need} candidates, ask for "
            "fewer patients, or lower max_ratio (which raises the acceptance rate)"
        )
    chosen = accepted[:size]
    cohort = ds.isel(patient=chosen)
    original = np.asarray(cohort["patient"].values, dtype=np.int64)
    cohort = cohort.assign_coords(patient=np.arange(size, dtype=np.int64))
    cohort["patient"].attrs.update(ds["patient"].attrs)
    cohort["candidate_patient"] = xr.Variable(
        "patient",
        original,
        {
            "units": "1",
            "long_name": "index of the patient in the candidate pool",
            "source": f"cohorts.match(method='select') from {n} candidates",
        },
    )
    cohort["sampling_weight"] = xr.Variable(
        "patient",
        np.ones(size),
        {
            "units": "1",
            "long_name": "sampling weight (1: selected by acceptance-rejection)",
            "source": f"selected with probability proportional to oversampling x entropy-"
            f"balancing weight to {table.name} (Allen et al. 2016, doi:10.1002/psp4.12063)",
        },
    )
    cohort.attrs.update(n_patients=size, first_patient=0)
    info.update(
        n_candidates=int(n),
        size=size,
        n_accepted=int(accepted.size),
        acceptance_rate=float(accepted.size / n),
        expected_acceptance_rate=float(accept_p.mean()),
        candidates_examined=int(chosen[-1] + 1),
        selection_seed=int(seed),
    )
    return _result(cohort, table, "select", info, reference, seed)


def _fit(ds, table, *, spec, n_fit, reference, seed) -> MatchResult:
    from .fitting import fit_spec
    from .sampling import sample

    if spec is None:
        raise MatchError("method 'fit' needs the population spec: match(..., spec=SPEC)")
    fit = fit_spec(spec, table, n=n_fit, seed=seed)
    cohort = sample(fit.spec, ds.sizes["patient"], seed=seed)
    info = dict(fit.summary)
    info["fitted_spec"] = fit.spec.raw
    info["parameters"] = fit.parameters.to_dict(orient="records")
    return _result(cohort, table, "fit", info, reference, seed)


def _result(cohort, table, method, info, reference, seed) -> MatchResult:
    cert = certificate(cohort, table, method=method, reference=reference, seed=seed)
    cohort.attrs.update(
        matching_method=method,
        matching_table=table.name,
        matching_table_file=table.source_file,
        matching_table_sha256=table.sha256,
        matching_citation=table.citation,
        matching_kish_n=cert.attrs["summary"]["kish_n"],
        matching_all_passed=int(cert.attrs["summary"]["all_passed"]),
    )
    summary = {**cert.attrs["summary"], method: info}
    return MatchResult(cohort, cert, summary)


def match(
    ds: xr.Dataset,
    targets: TargetTable | str | Path | dict,
    method: str = "weights",
    *,
    max_ratio: float = DEFAULT_MAX_RATIO,
    min_ratio: float = 0.0,
    size: int | None = None,
    spec=None,
    n_fit: int = 20_000,
    seed: int | None = None,
    reference: xr.Dataset | None = None,
) -> MatchResult:
    """Match a cohort to a target table.

    Parameters
    ----------
    ds : xarray.Dataset
        The cohort (``weights``), the candidate pool (``select``), or any cohort of the
        spec whose size the fitted cohort takes (``fit``).
    targets : TargetTable, path or mapping
        The target table (:func:`cohorts.load_targets`); checked against ``ds`` first.
    method : {"weights", "select", "fit"}
    max_ratio, min_ratio : float
        ``weights``/``select``: bounds of a matching weight relative to the patient's base
        weight (``max_ratio > 1 > min_ratio >= 0``; default 20 and 0).
    size : int, optional
        ``select``: patients to select (default the table's ``n``).
    spec : PopulationSpec, path or mapping
        ``fit``: the population spec to refit (required).
    n_fit : int
        ``fit``: patients of the common-random-numbers sample the fit evaluates.
    seed : int, optional
        ``select``: seed of the selection stream; ``fit``: seed of the fitting sample and
        of the generated cohort (default the cohort's ``seed`` attribute, else 0).
    reference : xarray.Dataset, optional
        Reference sample for the certificate's multivariate check.

    Returns
    -------
    MatchResult
        ``cohort``, ``certificate`` and ``summary`` (certificate summary plus the method's
        numbers under the method's name: for ``weights`` the bounds and the largest
        factor, for ``select`` the acceptance rate, for ``fit`` the fitted parameters).

    Raises
    ------
    TargetError
        The table does not fit the cohort (unknown variable, category, units...).
    InfeasibleTargetsError
        No cohort of the method meets every target (the message names them and how close
        the nearest comes).
    MatchError
        Unknown method, bad option, or too few candidates for ``select``.

    Examples
    --------
    >>> import cohorts
    >>> spec = cohorts.load_spec({"name": "demo", "variables": {"x": {
    ...     "long_name": "x", "units": "1", "source": "example",
    ...     "distribution": {"type": "normal", "mean": 0, "sd": 1}}}})
    >>> ds = cohorts.sample(spec, 5000, seed=1)
    >>> table = {"name": "t", "citation": "example", "n": 200,
    ...          "targets": [{"variable": "x", "mean": 0.3, "sd": 1.0}]}
    >>> result = cohorts.match(ds, table, method="weights")
    >>> result.summary["all_passed"]
    True
    """
    if method not in METHODS:
        raise MatchError(f"unknown matching method {method!r}; allowed: {list(METHODS)}")
    table = load_targets(targets)
    table.check(ds)
    table = table.resolved(ds)  # a mean without its SD: the candidates' SD (plug-in)
    if seed is None:
        attr = ds.attrs.get("seed", 0)
        seed = int(attr) if isinstance(attr, int | np.integer) else 0
    if method == "fit":
        return _fit(ds, table, spec=spec, n_fit=n_fit, reference=reference, seed=seed)
    if not max_ratio > 1.0 > min_ratio >= 0.0:
        raise MatchError(
            f"max_ratio and min_ratio must satisfy max_ratio > 1 > min_ratio >= 0; got "
            f"{max_ratio}, {min_ratio}"
        )
    if method == "weights":
        return _weights(
            ds, table, max_ratio=max_ratio, min_ratio=min_ratio, reference=reference, seed=seed
        )
    return _select(
        ds, table, size=size, max_ratio=max_ratio, min_ratio=min_ratio, reference=reference,
        seed=seed,
    )  # fmt: skip
