"""Outcomes at a comparator's time point, from the model's own follow-up hook.

Validation and calibration compare each published figure with the model's prediction at the
time the figure was measured (:meth:`models.Model.at_timepoint`). This module turns a stored
outcomes Dataset (dims ``arm, patient`` and any extra dims, e.g. per element) into that
projection, arm by arm, or into the model's reason for not predicting it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["timepoint_projector"]


def timepoint_projector(
    model: Any,
    outcomes: xr.Dataset,
    cohort: xr.Dataset,
    settings: Mapping[str, Any],
) -> Callable[[float], xr.Dataset | str]:
    """``days -> outcomes at that time point | reason`` for :func:`credibility.validation.validate`.

    Parameters
    ----------
    model : models.Model
        The trial's model (its ``at_timepoint`` hook).
    outcomes : xarray.Dataset
        Dims ``(arm, patient[, extra dims])`` (loaded); variables with extra dims are
        projected too.
    cohort : xarray.Dataset
        The cohort (model inputs of the same patients).
    settings : mapping
        The model settings of the run (calibrated values included).
    """
    patients_index = outcomes["patient"].values
    cohort = cohort.sel(patient=patients_index) if "patient" in cohort.coords else cohort
    patients = {k: np.asarray(cohort[k].values) for k in model.inputs if k in cohort}
    # per-patient outputs, with any extra dims after (arm, patient) (elements, time)
    names = [v for v in outcomes.data_vars if outcomes[v].dims[:2] == ("arm", "patient")]
    extra = {d for v in names for d in outcomes[v].dims[2:]}
    arms = [str(a) for a in outcomes["arm"].values]
    cache: dict[float, xr.Dataset | str] = {}

    def at(days: float) -> xr.Dataset | str:
        if days in cache:
            return cache[days]
        projected = {}
        for i in range(len(arms)):
            outs = {v: np.asarray(outcomes[v].values[i]) for v in names}
            result = model.at_timepoint(outs, patients, float(days), settings)
            if isinstance(result, str):
                cache[days] = result
                return result
            for v in names:
                projected.setdefault(v, []).append(np.asarray(result[v]))
        ds = xr.Dataset(
            {v: (outcomes[v].dims, np.stack(projected[v]), dict(outcomes[v].attrs)) for v in names},
            coords={
                "arm": outcomes["arm"].values,
                "patient": patients_index,
                **{d: outcomes[d].values for d in extra if d in outcomes.coords},
            },
        )
        cache[days] = ds
        return ds

    return at
