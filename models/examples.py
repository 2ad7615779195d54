"""Small analytic models for tests, benchmarks and as templates for new models.

- :class:`OrificeModel` — a cheap vectorised algebraic valve model (simplified Bernoulli through
  a fixed orifice): the engine-overhead benchmark uses it because it costs almost nothing.
- :class:`FlakyOrificeModel` — the same, but fails (NaN) for chosen patients and raises a
  ``timeout`` status for others: for fault-handling tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import STATUS, Model, Variable

__all__ = ["FlakyOrificeModel", "OrificeModel"]

_RHO_BLOOD = 1050.0  # kg/m3
_PA_PER_MMHG = 133.322


class OrificeModel(Model):
    """Mean Doppler gradient through a fixed orifice: ΔP = ρ/2 · (Q/EOA)².

    Device keys: ``eoa_cm2`` (default 1.5) and ``eoa_scale`` (default 1.0), scalars or
    arrays of shape (n,). Setting ``delay_s`` sleeps that long per batch, to stand in for an
    expensive solver in fault-tolerance tests.
    """

    name: ClassVar[str] = "orifice"
    version: ClassVar[str] = "1"
    inputs: ClassVar[dict[str, Variable]] = {
        "svi_ml_m2": Variable("mL m-2", "stroke volume index", (10.0, 120.0)),
        "bsa_m2": Variable("m2", "body surface area", (0.8, 3.5)),
        "heart_rate_bpm": Variable("1/min", "heart rate", (30.0, 200.0)),
    }
    outputs: ClassVar[dict[str, Variable]] = {
        "mean_flow_ml_s": Variable("mL s-1", "mean systolic flow"),
        "mean_gradient_mmhg": Variable("mmHg", "mean transvalvular gradient (Doppler)"),
    }

    def simulate(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray]:
        if settings.get("delay_s"):
            time.sleep(float(settings["delay_s"]))
        sv_ml = patients["svi_ml_m2"] * patients["bsa_m2"]
        ejection_s = 0.3  # s, typical ejection time (shared/reference/tavr.md)
        q = sv_ml / ejection_s
        eoa_cm2 = np.asarray(device.get("eoa_cm2", 1.5)) * np.asarray(device.get("eoa_scale", 1.0))
        v_m_s = q * 1e-6 / (eoa_cm2 * 1e-4)
        return {
            "mean_flow_ml_s": q,
            "mean_gradient_mmhg": 0.5 * _RHO_BLOOD * v_m_s**2 / _PA_PER_MMHG,
        }


class FlakyOrificeModel(OrificeModel):
    """:class:`OrificeModel` that fails on purpose.

    Settings keys: ``fail_patients`` (patient ids whose outputs are NaN → solver_failure),
    ``timeout_patients`` (ids reported with status ``timeout``), and ``crash_patients`` with
    ``crash_while_exists`` (a path): while that file exists, a batch holding one of these ids
    raises — a crashing model, as opposed to a failing patient. Needs the ``patient`` ids,
    which the engine passes with every batch.
    """

    name: ClassVar[str] = "flaky_orifice"

    def simulate(self, patients, device, settings):
        out = super().simulate(patients, device, settings)
        ids = np.asarray(patients.get("patient", np.arange(len(patients["bsa_m2"]))))
        crash = np.asarray(settings.get("crash_patients", []), dtype=ids.dtype)
        flag = settings.get("crash_while_exists")
        if flag and Path(flag).exists() and np.isin(ids, crash).any():
            raise RuntimeError(
                f"model crashed on a batch with patients {sorted(map(int, set(ids) & set(crash)))}"
            )
        fail = np.isin(ids, np.asarray(settings.get("fail_patients", []), dtype=ids.dtype))
        out["mean_gradient_mmhg"] = np.where(fail, np.nan, out["mean_gradient_mmhg"])
        status = np.full(ids.shape, STATUS["ok"], dtype=np.int8)
        status[np.isin(ids, np.asarray(settings.get("timeout_patients", []), dtype=ids.dtype))] = (
            STATUS["timeout"]
        )
        out["status"] = status
        return out
