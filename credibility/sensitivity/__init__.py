"""Global sensitivity analysis of model outputs.

One module per method, each with ``sample(problem, n, *, seed)`` and
``analyze(problem, X, Y, *, seed) -> xarray.Dataset`` (dims ``(output, parameter[, extra])``,
``*_conf`` = bootstrap half-widths, ``attrs["citation"]``):

======================  =====================================  =============================
module                  indices                                inputs
======================  =====================================  =============================
:mod:`.sobol`           S1, ST, S2 (Saltelli, SALib)           independent
:mod:`.morris`          mu, mu_star, sigma (screening)         independent
:mod:`.fast`            S1, ST (eFAST)                         independent
:mod:`.rbd`             S1 (RBD-FAST)                          independent
:mod:`.pce`             S1, ST, S2, loo_error (chaospy basis)  independent
:mod:`.delta`           delta, S1 (given data)                 any sample, e.g. a cohort
:mod:`.pawn`            PAWN median / max (given data)         any sample, e.g. a cohort
:mod:`.shapley`         Sh (Song, Nelson & Staum 2016; exact  Gaussian-copula dependence
                        or random permutations)
======================  =====================================  =============================

:func:`run` drives a method through a model ``evaluate(X) -> {output: array}`` with a
stopping rule on confidence-interval width; :func:`plot_indices` and :func:`plot_convergence`
draw the results. Problems come from :func:`problem_from_config` (see
:mod:`credibility._problem`).
"""

from __future__ import annotations

from credibility._problem import Problem, UncertaintySpecError, problem_from_config
from credibility.sensitivity import delta, fast, morris, pawn, pce, rbd, shapley, sobol
from credibility.sensitivity._run import (
    DEFAULT_INDICES,
    METHODS,
    plot_convergence,
    plot_indices,
    run,
)

__all__ = [
    "DEFAULT_INDICES",
    "METHODS",
    "Problem",
    "UncertaintySpecError",
    "delta",
    "fast",
    "morris",
    "pawn",
    "pce",
    "plot_convergence",
    "plot_indices",
    "problem_from_config",
    "rbd",
    "run",
    "shapley",
    "sobol",
]
