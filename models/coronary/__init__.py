"""Coronary physiology: reduced-order stenosis pressure drop, FFR, virtual angiography, stents.

Public API: :class:`CoronaryModel` (registry name ``"coronary"``); the stenosis law and the
vessel flow solver in :mod:`models.coronary.stenosis`; the arteries at hyperaemia and stent
deployment in :mod:`models.coronary.vessels`; the angiographic reads in
:mod:`models.coronary.angiography`; the model's own verification in
:mod:`models.coronary.verification`.
"""

from __future__ import annotations

from .model import (
    DEFAULT_SETTINGS,
    MAX_LESIONS,
    STRATEGIES,
    CoronaryModel,
    CoronarySettingsError,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "MAX_LESIONS",
    "STRATEGIES",
    "CoronaryModel",
    "CoronarySettingsError",
]
