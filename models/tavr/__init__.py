"""TAVR lumped-parameter haemodynamics model (LV elastance, Garcia valve, Windkessel).

Public API: :class:`TAVRModel` (registry name ``"tavr"``), the device tables in
:mod:`models.tavr.devices` and the verification helpers in :mod:`models.tavr.verification`.
"""

from __future__ import annotations

from .devices import FAMILIES, DeviceFamily, TAVRDeviceError, reference_eoa_cm2, select_size
from .model import DEFAULT_SETTINGS, TAVRModel, TAVRSettingsError, personalise

__all__ = [
    "DEFAULT_SETTINGS",
    "FAMILIES",
    "DeviceFamily",
    "TAVRDeviceError",
    "TAVRModel",
    "TAVRSettingsError",
    "personalise",
    "reference_eoa_cm2",
    "select_size",
]
