"""TAVR model: device–anatomy deployment, LV – valve – Windkessel kernel and a virtual echo.

Public API: :class:`TAVRModel` (registry name ``"tavr"``), the device families in
:mod:`models.tavr.devices`, deployment in :mod:`models.tavr.deployment`, the virtual echo in
:mod:`models.tavr.echo` and the model's own verification in :mod:`models.tavr.verification`.
"""

from __future__ import annotations

from .devices import FAMILIES, DeviceFamily, TAVRDeviceError, select_size
from .model import DEFAULT_SETTINGS, TAVRModel, TAVRSettingsError, personalise

__all__ = [
    "DEFAULT_SETTINGS",
    "FAMILIES",
    "DeviceFamily",
    "TAVRDeviceError",
    "TAVRModel",
    "TAVRSettingsError",
    "personalise",
    "select_size",
]
