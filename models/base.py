"""The Model protocol: class-level metadata and a vectorised ``simulate``.

A model is a class with ``name``, ``version``, declared ``inputs`` and ``outputs``
(name → :class:`Variable`) and a method ``simulate(patients, device, settings)`` that takes
a batch of patients as a mapping of 1-D arrays (first axis = patient) and returns a mapping
of output arrays with the same first axis. The engine never calls ``simulate`` directly: it
calls :func:`run_batch`, which enforces the declared input bounds and turns NaN outputs into
a ``solver_failure`` status, so a failing patient never fails a trial.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ModelError

__all__ = [
    "STATUS",
    "STATUS_FLAG_MEANINGS",
    "Event",
    "Model",
    "ModelInputError",
    "Variable",
    "run_batch",
]

#: Per-patient status codes written to every outcomes store (CF ``flag_values``).
STATUS: dict[str, int] = {"ok": 0, "invalid_input": 1, "solver_failure": 2, "timeout": 3}
STATUS_FLAG_MEANINGS = " ".join(STATUS)


class ModelInputError(ModelError):
    """A batch handed to a model lacks a declared input or has the wrong shape."""


@dataclass(frozen=True)
class Variable:
    """A declared model input or output.

    Parameters
    ----------
    units : str
        UDUNITS-style units (``"mmHg"``, ``"cm2"``, ``"1"`` for dimensionless).
    description : str
        One line, used as ``long_name`` in stores and in the model card.
    bounds : tuple of float, optional
        Closed interval ``(low, high)`` of admissible values (inputs: enforced before the model
        runs; outputs: documentation only). ``None`` for either end means unbounded.
    dtype : str
        numpy dtype of the array (``"float64"``, ``"int8"``, …).
    dims : tuple of str
        Extra dimensions after ``patient`` (e.g. ``("time",)``); sizes come from
        :meth:`Model.output_dims`.
    attrs : mapping
        Extra attributes for the store (e.g. ``flag_values``/``flag_meanings``).
    ragged : bool
        Only for outputs with extra ``dims``: elements may be absent for a patient (e.g.
        lesion slots a patient does not fill) and hold the fill value (NaN / −1). A row then
        counts as a ``solver_failure`` only when none of its elements is valid.
    """

    units: str
    description: str
    bounds: tuple[float | None, float | None] | None = None
    dtype: str = "float64"
    dims: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    ragged: bool = False

    @property
    def fill_value(self) -> float | int:
        """The value written for patients without a result: NaN for floats, −1 for integers."""
        return np.nan if np.dtype(self.dtype).kind == "f" else -1


@dataclass(frozen=True)
class Event:
    """A binary clinical event a model derives from one of its outputs.

    The core (UQ, report, answer tables) counts events by these declarations and never by
    device knowledge of its own: e.g. VARC-3 severe prosthesis-patient mismatch is
    ``Event("ppm_class", "severe PPM", category="2")``, a functionally significant lesion
    ``Event("ffr", "FFR <= 0.80", threshold="<=0.80")``.

    Parameters
    ----------
    quantity : str
        The output the event is read from.
    label : str
        Human-readable name.
    category : str, optional
        Integer class code(s) that count, ``"2"`` or ``"1|2"``.
    threshold : str, optional
        ``"<=0.80"``, ``">=20"``: values on that side count.
    source : str
        Where the definition comes from (guideline, trial).
    """

    quantity: str
    label: str
    category: str | None = None
    threshold: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if (self.category is None) == (self.threshold is None):
            raise ValueError(
                f"event on {self.quantity!r}: give exactly one of category or threshold"
            )

    def occurs(self, values: np.ndarray) -> np.ndarray:
        """1.0 where the event occurs, 0.0 where not, NaN where the value is missing."""
        x = np.asarray(values, dtype=float)
        valid = np.isfinite(x)
        if self.category is not None:
            codes = [float(c) for c in self.category.split("|")]
            valid &= x >= 0
            hit = np.isin(x, codes)
        else:
            text = self.threshold.strip()
            op = next(o for o in ("<=", ">=", "<", ">") if text.startswith(o))
            level = float(text[len(op) :])
            hit = {"<=": x <= level, ">=": x >= level, "<": x < level, ">": x > level}[op]
        return np.where(valid, hit.astype(float), np.nan)


class Model:
    """Base class of every device model.

    Subclasses set the class attributes and implement :meth:`simulate`.

    Attributes
    ----------
    name : str
        Registry name (``"tavr"``).
    version : str
        Bumped whenever results can change; stores remember it and refuse to mix versions.
    inputs, outputs : dict of str to Variable
        Declared per-patient inputs and outputs (``status`` is added by :func:`run_batch`).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    inputs: ClassVar[dict[str, Variable]] = {}
    outputs: ClassVar[dict[str, Variable]] = {}
    #: Formal order of accuracy of the model's discretisation (used by the GCI); None if the
    #: model has no discretisation parameter.
    formal_order: ClassVar[float | None] = None
    #: ``(settings key, default value)`` of the discretisation step (e.g. ``("dt_s", 1e-3)``).
    step_setting: ClassVar[tuple[str, float] | None] = None
    #: Days after the intervention that the outputs describe (``None``: not time-specific).
    timepoint_days: ClassVar[tuple[float, float] | None] = None
    #: Settings a trial may calibrate (fit to calibration comparators); see the model card.
    calibration_parameters: ClassVar[tuple[str, ...]] = ()
    #: Binary events derived from the outputs (name -> :class:`Event`), counted by the core.
    events: ClassVar[dict[str, Event]] = {}
    #: Derived outputs (name -> the outputs they are computed from, by :meth:`derive`), e.g. a
    #: mismatch class from an indexed area; the core recomputes them on surrogate predictions
    #: (UQ) and projected outputs (:meth:`at_timepoint`).
    derived_outputs: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: The model card shipped with the model (``None``: no card).
    card_file: ClassVar[str | None] = None
    #: The output holding the implanted device's size, which a comparator row's ``size_mm``
    #: selects (``None``: the model has no device sizes).
    size_output: ClassVar[str | None] = None

    def code_verification(self) -> dict[str, Any] | None:
        """Code verification evidence: the numerics against a problem with a known solution.

        Returns a JSON-friendly dict with at least ``formal_order``, ``observed_order`` and
        ``order_error_abs`` (|observed − formal| on the finest pair), or None (default) when
        the model offers none.
        """
        return None

    def time_step_study(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        dts: list[float],
        settings: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """Endpoints of the same patients at several step sizes ``dts`` (coarse → fine), for
        calculation verification (GCI).

        Returns ``{"endpoints": {name: array (levels, n)}, "converged": bool array (levels, n)}``
        or None (default) when the model has no step size.
        """
        return None

    def derive(
        self, outputs: Mapping[str, np.ndarray], patients: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The :attr:`derived_outputs` computed from ``outputs`` (and the patients' inputs).

        Arrays may carry extra leading or trailing axes (parameter samples, arms): patient
        inputs are given broadcastable to them. The default derives nothing.
        """
        return {}

    def card_path(self) -> Path | None:
        """The model card shipped beside the model's source (:attr:`card_file`), if any."""
        if self.card_file is None:
            return None
        module = sys.modules[type(self).__module__]
        return Path(module.__file__).with_name(self.card_file)

    def at_timepoint(
        self,
        outputs: Mapping[str, np.ndarray],
        patients: Mapping[str, np.ndarray],
        days: float,
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray] | str:
        """The outputs as they would be observed ``days`` after the intervention.

        Validation compares a comparator with the model's prediction at the comparator's time
        point. Return the projected per-patient outputs, or a string saying why the model
        cannot predict that time point (the comparator is then excluded with that reason).
        The default: outputs that are not time-specific hold at any time point.
        """
        return dict(outputs)

    def output_dims(self, settings: Mapping[str, Any]) -> dict[str, int]:
        """Sizes of the extra output dimensions (e.g. ``{"time": 200}``) under ``settings``."""
        return {}

    def check(self, device: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` if the model cannot run this device with these settings.

        Called once per arm before any work, so a mistyped device or settings key is one
        clear error instead of a failed task per batch. The message should name the key and
        the allowed values. The default checks the settings through :meth:`output_dims`.
        """
        self.output_dims(settings)

    def simulate(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray]:
        """Simulate a batch of patients with one device; vectorised over the first axis."""
        raise NotImplementedError(f"{type(self).__name__}.simulate is not implemented")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} v{self.version}>"


def _in_bounds(values: np.ndarray, bounds: tuple[float | None, float | None] | None) -> np.ndarray:
    ok = np.isfinite(values)
    if bounds is None:
        return ok
    low, high = bounds
    if low is not None:
        ok &= values >= low
    if high is not None:
        ok &= values <= high
    return ok


def run_batch(
    model: Model,
    patients: Mapping[str, np.ndarray],
    device: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """Run ``model`` on a batch, enforcing the Model contract.

    Rows with an input outside its declared bounds (or non-finite) get status
    ``invalid_input`` and are not passed to the model. NaN in any float output of a row the
    model marked ``ok`` (or left without a status) becomes ``solver_failure`` (for a
    ``ragged`` output: NaN in every element). Outputs of
    rows that are not ``ok`` are set to the variable's fill value (NaN / −1).

    Parameters
    ----------
    model : Model
    patients : mapping of str to ndarray
        At least every declared input, each of shape ``(n,)``.
    device, settings : mapping
        Passed through to :meth:`Model.simulate`.

    Returns
    -------
    dict of str to ndarray
        Every declared output (shape ``(n, *extra)``) and ``status`` (int8, codes in
        :data:`STATUS`).

    Raises
    ------
    ModelInputError
        If a declared input is missing or the arrays disagree in length.
    """
    missing = [k for k in model.inputs if k not in patients]
    if missing:
        raise ModelInputError(
            f"model {model.name!r} needs inputs {missing}; the batch has {sorted(patients)}"
        )
    arrays = {k: np.asarray(patients[k]) for k in model.inputs}
    lengths = {a.shape[0] for a in arrays.values()}
    if len(lengths) != 1:
        raise ModelInputError(f"model {model.name!r}: inputs have different lengths {lengths}")
    (n,) = lengths
    valid = np.ones(n, dtype=bool)
    for key, var in model.inputs.items():
        valid &= _in_bounds(arrays[key].astype(np.float64, copy=False), var.bounds)

    dims = model.output_dims(settings)
    out: dict[str, np.ndarray] = {}
    for key, var in model.outputs.items():
        shape = (n, *(dims[d] for d in var.dims))
        out[key] = np.full(shape, var.fill_value, dtype=var.dtype)
    status = np.where(valid, STATUS["ok"], STATUS["invalid_input"]).astype(np.int8)

    idx = np.flatnonzero(valid)
    if idx.size:
        subset = {k: v[idx] for k, v in patients.items() if np.ndim(v) and len(v) == n}
        sub_device = {k: _take_rows(v, idx, n) for k, v in device.items()}
        result = model.simulate(subset, sub_device, settings)
        sub_status = np.asarray(result.get("status", np.zeros(idx.size)), dtype=np.int8)
        for key, var in model.outputs.items():
            values = np.asarray(result[key])
            if np.dtype(var.dtype).kind == "f":
                finite = np.isfinite(values).reshape(idx.size, -1)
                if var.ragged and var.dims:  # absent elements are NaN; all absent is a failure
                    bad = ~finite.any(axis=1) if finite.shape[1] else np.zeros(idx.size, bool)
                else:
                    bad = ~finite.all(axis=1)
                sub_status = np.where(
                    (sub_status == STATUS["ok"]) & bad, STATUS["solver_failure"], sub_status
                )
            out[key][idx] = values.astype(var.dtype, copy=False)
        status[idx] = sub_status
    not_ok = status != STATUS["ok"]
    if not_ok.any():
        for key, var in model.outputs.items():
            out[key][not_ok] = var.fill_value
    out["status"] = status
    return out


def _take_rows(value: Any, idx: np.ndarray, n: int) -> Any:
    """Subset per-patient arrays in ``device`` (UQ passes parameters as arrays of shape (n,))."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
        return value[idx]
    return value
