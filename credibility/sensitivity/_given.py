"""Shared pieces of the given-data analysers (delta, PAWN)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from credibility._problem import Problem
from credibility.sensitivity._common import names_of

__all__ = ["given_data_sample", "given_inputs"]


def given_data_sample(
    problem: Problem | Sequence[str], n: int, seed: int | None, method: str
) -> np.ndarray:
    """I.i.d. rows of the joint distribution (with its correlation) for given-data methods."""
    if not isinstance(problem, Problem):
        raise TypeError(
            f"{method}: sample() needs a Problem; with given data (e.g. a simulated cohort) "
            "call analyze() on the data directly"
        )
    return problem.sample(n, seed=seed)


def given_inputs(problem: Problem | Sequence[str], X, method: str) -> np.ndarray:
    names = names_of(problem)
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas DataFrame: select by name
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise KeyError(
                f"{method}: columns {missing} missing from X; available: {list(X.columns)}"
            )
        X = X[list(names)].to_numpy(dtype=float)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"{method}: X must have shape (n_rows, {len(names)}); got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{method}: X contains non-finite values")
    return X
