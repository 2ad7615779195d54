"""Which virtual patients (or elements of patients) a comparator row is compared with.

A comparator row names an arm (or ``pooled``), a quantity, an optional device size
(``size_mm``, on the model's size output) and an optional ``where`` clause over cohort and
outcome variables (:func:`credibility.comparators.select`). :func:`selected_values` returns
the values and sampling weights of the virtual patients it describes, the input of
:func:`credibility.validation.predict_statistic`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .comparators import POOLED_ARM, select, where_variables
from .errors import ValidationError

__all__ = ["selected_values"]


def selected_values(
    arrays: Mapping[str, np.ndarray],
    arms: Sequence[str],
    row: Mapping[str, Any],
    cohort_vars: Mapping[str, np.ndarray],
    weights: np.ndarray,
    *,
    size_variable: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights of the virtual patients (or elements) a comparator row selects.

    Outcome variables may carry extra dims after ``(arm, patient)``, e.g. one value per
    element of a patient (``element``): when the row's quantity or a variable its ``where``
    clause names has them, the unit of the row is the element (patient × element) rather
    than the patient. Patient-level outcomes, cohort variables and weights are then
    broadcast along the extra dims, the arrays flattened to one row per element, and
    elements with a non-finite value (absent slots, NaN) dropped like failed patients. So
    ``y`` with ``where = "x>=50 & k>=2"`` (``x`` per element, ``k`` per patient) selects the
    elements with ``x >= 50`` of patients with ``k >= 2``, each weighted by its patient's
    sampling weight.

    Parameters
    ----------
    arrays : mapping of str to ndarray, shape (arm, patient[, extra dims])
        Outcome variables (at least ``status``, the row's quantity, ``size_variable`` for a
        row with ``size_mm``, and the variables its ``where`` uses).
    arms : sequence of str
        Arm names in the order of the first axis.
    row : mapping
        The comparator row: ``arm`` (an arm or ``pooled``), ``quantity``, ``size_mm``,
        ``where``.
    cohort_vars : mapping of str to ndarray, shape (patient,)
        Cohort variables a ``where`` clause may name.
    weights : ndarray, shape (patient,)
    size_variable : str, optional
        Outcome variable holding the device size a row's ``size_mm`` selects on (e.g. the
        model's declared size output); required when the row has a ``size_mm``.

    Returns
    -------
    (values, weights) : ndarray, ndarray
        One entry per selected patient (or element) with ``status == 0`` and a valid value
        (``>= 0`` for integer classes).

    Raises
    ------
    ValidationError
        For an unknown arm, quantity or ``where`` variable (the message lists what exists),
        variables of the row whose extra dims differ, or a row with ``size_mm`` without a
        ``size_variable`` in ``arrays``.

    Examples
    --------
    A per-element quantity selected by a per-element and a patient-level variable:

    >>> y = np.array([[[0.7, 0.9], [0.85, np.nan]]])  # (arm, patient, element)
    >>> x = np.array([[[60.0, 40.0], [55.0, np.nan]]])
    >>> arrays = {"y": y, "x": x, "status": np.zeros((1, 2), np.int8)}
    >>> row = {"id": "r", "quantity": "y", "arm": "a", "where": "x>=50 & age>=60"}
    >>> values, w = selected_values(arrays, ["a"], row, {"age": np.array([70, 50])},
    ...                             np.array([1.0, 2.0]))
    >>> values.tolist(), w.tolist()
    ([0.7], [1.0])
    """
    where = f"comparator id={row['id']}"
    q, arm = row["quantity"], row["arm"]
    if q not in arrays:
        raise ValidationError(
            f"{where}: quantity '{q}' not in outcomes; available: {sorted(arrays)}"
        )
    if arm != POOLED_ARM and arm not in arms:
        raise ValidationError(
            f"{where}: arm '{arm}' not in outcomes; allowed: {list(arms) + [POOLED_ARM]}"
        )
    clause = str(row.get("where") or "").strip()
    size = row.get("size_mm", np.nan)
    by_size = size is not None and np.isfinite(size)
    used = {q} | (where_variables(clause) if clause else set())
    used |= {size_variable} if by_size and size_variable else set()
    extra = {np.shape(arrays[v])[2:] for v in used if v in arrays and np.ndim(arrays[v]) > 2}
    if len(extra) > 1:
        raise ValidationError(
            f"{where}: variables {sorted(used)} have different extra dims {sorted(extra)}; "
            "a row can broadcast patient-level variables along one set of extra dims only"
        )
    shape = (len(weights), *(extra.pop() if extra else ()))

    def rows(x: np.ndarray) -> np.ndarray:
        """One entry per patient (or element): patient-level values broadcast, flattened."""
        x = np.asarray(x)
        return np.broadcast_to(x.reshape(x.shape + (1,) * (len(shape) - x.ndim)), shape).ravel()

    idx = list(range(len(arms))) if arm == POOLED_ARM else [list(arms).index(arm)]
    values, chosen_w = [], []
    for a in idx:
        vals = rows(np.asarray(arrays[q][a], dtype=float))
        ok = (rows(arrays["status"][a]) == 0) & np.isfinite(vals)
        if np.issubdtype(np.asarray(arrays[q]).dtype, np.integer):
            ok &= vals >= 0
        if by_size:
            if size_variable is None:
                raise ValidationError(
                    f"{where}: size_mm is {size:g} but no size_variable was given (the outcome "
                    "variable holding the device size)"
                )
            if size_variable not in arrays:
                raise ValidationError(
                    f"{where}: size_mm given but outcomes lack size_variable "
                    f"'{size_variable}'; available: {sorted(arrays)}"
                )
            ok &= rows(np.asarray(arrays[size_variable][a], dtype=float)) == size
        if clause:
            variables = {**cohort_vars, **{k: v[a] for k, v in arrays.items()}}
            variables = {k: rows(v) if k in used else v for k, v in variables.items()}
            try:
                ok &= select(clause, variables, vals.size)
            except KeyError as exc:
                raise ValidationError(f"{where}: {exc.args[0]}") from None
        values.append(vals[ok])
        chosen_w.append(rows(weights)[ok])
    return np.concatenate(values), np.concatenate(chosen_w)
