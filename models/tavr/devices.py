"""Transcatheter valve families: design parameters and sizing charts.

A device is described by what an engineer can change or look up, not by its clinical result:

* labelled sizes and the manufacturer's CT sizing chart (IFU);
* the nominal outer diameter at nominal expansion (= the labelled size) and the frame height;
* where the leaflets sit: ``intra``-annular (inside the frame at the annulus) or
  ``supra``-annular (in a housing above the annulus);
* how much of the frame's under-expansion at the annulus reaches the leaflet level
  (``leaflet_transmission``: 1 for intra-annular leaflets, which sit where the frame is
  constrained; about 0.3 for a supra-annular housing, see below);
* the leaflet tissue (bovine or porcine pericardium), which sets the leaflet opening law in
  :mod:`models.tavr.deployment`.

The in-vivo effective orifice per unit of nominal area (``orifice_coefficient``) is *not* a
published design number for these devices (manufacturers' hydrodynamic tables were not
available to us): it is a calibration parameter of the model, fitted by the trial's calibrate
stage to calibration comparators and never to validation data (``card.yaml``).

Sources
-------
* SAPIEN 3 (Edwards, model 9600TFX) Instructions for Use: cobalt-chromium balloon-expandable
  frame, trileaflet bovine pericardium, frame heights 15.5 / 18 / 20 / 22.5 mm and CT
  annulus-area ranges 273–345 / 338–430 / 430–546 / 540–683 mm² for 20 / 23 / 26 / 29 mm.
* Evolut PRO+ / PRO (Medtronic) Instructions for Use: self-expanding nitinol frame, three
  leaflets of porcine pericardium in a supra-annular position, annulus perimeter ranges
  56.5–62.8 / 62.8–72.3 / 72.3–81.7 / 81.7–94.2 mm for 23 / 26 / 29 / 34 mm.
* Leaflet transmission of a supra-annular housing, 0.31: at the level of central leaflet
  coaptation the CoreValve frame's area deficit was 0.5 cm² (IQR 0.2–0.7) against 1.6 cm²
  (0.9–2.6) at its ventricular end (Schultz CJ et al., Geometry and degree of apposition of
  the CoreValve ReValving System with multislice CT after implantation, JACC 2009), and
  under-expansion at the inflow carried up to the valve level in 17 % of supra-annular vs
  54 % of intra-annular valves (Subclinical leaflet thickening and stent frame geometry in
  self-expanding transcatheter heart valves, EuroIntervention, 4D-CT, n = 75): both give
  about 0.3 of the intra-annular transmission.

Sizing rule in overlapping chart ranges
---------------------------------------
The balloon-expandable chart overlaps at 338–345 mm² (20 vs 23 mm) and 540–546 mm²
(26 vs 29 mm); the self-expanding chart shares its boundaries (62.8, 72.3, 81.7 mm). Where an
annulus falls in two ranges, **the larger valve is chosen** (the usual oversizing practice
for sealing). Annuli outside the whole chart get the nearest size (``out_of_chart="nearest"``)
and are flagged, or are rejected (``out_of_chart="invalid"``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ModelError

__all__ = [
    "DESIGN_KEYS",
    "FAMILIES",
    "DeviceFamily",
    "TAVRDeviceError",
    "family_with",
    "select_size",
]


class TAVRDeviceError(ModelError):
    """A TAVR device description names an unknown family, size or option."""


@dataclass(frozen=True)
class DeviceFamily:
    """One transcatheter valve family and its design parameters.

    Attributes
    ----------
    name : str
        Family key used in device dicts (``"balloon_expandable"``, ``"self_expanding"``).
    label : str
        Human-readable description.
    expansion : {"balloon", "self"}
        How the frame is deployed.
    leaflet_position : {"intra", "supra"}
        Leaflets inside the frame at the annulus, or in a housing above it.
    leaflet_tissue : {"bovine", "porcine"}
        Pericardial leaflet tissue.
    leaflet_transmission : float
        Share of the frame's relative under-expansion at the annulus that reaches the leaflet
        level (1 = all of it), at the reference implant depth.
    implant_depth_mm : (float, float)
        Mean and SD of the implant depth below the annulus (mm), a procedural variable drawn
        per patient.
    reference_depth_mm : float
        Implant depth at which ``leaflet_transmission`` was measured; a supra-annular
        housing's transmission scales with depth / reference depth (deeper: leaflets nearer
        the annulus). Intra-annular leaflets ignore depth.
    sizing_variable : {"annulus_area_mm2", "annulus_perimeter_mm"}
        The CT annulus measure of the manufacturer's chart.
    sizes_mm : tuple of int
        Labelled sizes = nominal outer diameter at nominal expansion (mm), ascending.
    frame_height_mm : tuple of float
        Frame height per size (mm); NaN where not published.
    chart_low, chart_high : tuple of float
        Lower and upper annulus bound of each size (units of ``sizing_variable``).
    source : str
        Citation of the numbers.
    """

    name: str
    label: str
    expansion: str
    leaflet_position: str
    leaflet_tissue: str
    leaflet_transmission: float
    implant_depth_mm: tuple[float, float]
    reference_depth_mm: float
    sizing_variable: str
    sizes_mm: tuple[int, ...]
    frame_height_mm: tuple[float, ...]
    chart_low: tuple[float, ...]
    chart_high: tuple[float, ...]
    source: str


#: The two families of the default trial, keyed by the device-dict ``family`` value.
FAMILIES: dict[str, DeviceFamily] = {
    "balloon_expandable": DeviceFamily(
        name="balloon_expandable",
        label="balloon-expandable, intra-annular (SAPIEN 3-like)",
        expansion="balloon",
        leaflet_position="intra",
        leaflet_tissue="bovine",
        leaflet_transmission=1.0,
        # 4.89 +/- 1.57 mm (SAPIEN 3, n = 582): Monizzi G, et al. Front Cardiovasc Med
        # 2022;9:922696, doi:10.3389/fcvm.2022.922696
        implant_depth_mm=(4.9, 1.6),
        reference_depth_mm=4.9,
        sizing_variable="annulus_area_mm2",
        sizes_mm=(20, 23, 26, 29),
        frame_height_mm=(15.5, 18.0, 20.0, 22.5),
        chart_low=(273.0, 338.0, 430.0, 540.0),
        chart_high=(345.0, 430.0, 546.0, 683.0),
        source="Edwards SAPIEN 3 IFU (model 9600TFX): sizes, frame heights, CT area chart",
    ),
    "self_expanding": DeviceFamily(
        name="self_expanding",
        label="self-expanding, supra-annular (Evolut R/PRO-like)",
        expansion="self",
        leaflet_position="supra",
        leaflet_tissue="porcine",
        leaflet_transmission=0.31,
        # CoreValve family: 7 +/- 4 mm below the non-coronary cusp (Rodriguez-Olivares R, et
        # al. Rev Esp Cardiol 2016;69(4):392-400); the transmission was measured at 8.5 mm
        # (IQR 5.2-11.0) by Schultz et al. 2009.
        implant_depth_mm=(7.0, 4.0),
        reference_depth_mm=8.5,
        sizing_variable="annulus_perimeter_mm",
        sizes_mm=(23, 26, 29, 34),
        frame_height_mm=(np.nan, np.nan, np.nan, np.nan),
        chart_low=(56.5, 62.8, 72.3, 81.7),
        chart_high=(62.8, 72.3, 81.7, 94.2),
        source="Medtronic Evolut PRO+/PRO IFU: sizes and CT perimeter chart",
    ),
}

#: Design parameters a device dict may override (a design sweep varies these).
DESIGN_KEYS = ("leaflet_position", "leaflet_tissue", "leaflet_transmission", "implant_depth_mm")
_OUT_OF_CHART = ("nearest", "invalid")
_POSITIONS = ("intra", "supra")
_TISSUES = ("bovine", "porcine")


def _family(family: str) -> DeviceFamily:
    try:
        return FAMILIES[family]
    except KeyError:
        raise TAVRDeviceError(
            f"device key 'family' is {family!r}; allowed values: {sorted(FAMILIES)}"
        ) from None


def family_with(device: dict[str, Any]) -> DeviceFamily:
    """The device's family with the design overrides the device dict gives.

    Parameters
    ----------
    device : dict
        ``family`` and optionally any of :data:`DESIGN_KEYS` (``implant_depth_mm`` as a mean
        in mm, the SD staying the family's).

    Raises
    ------
    TAVRDeviceError
        For an unknown family or a design value outside its allowed set.
    """
    fam = _family(device["family"])
    changes: dict[str, Any] = {}
    if "leaflet_position" in device:
        if device["leaflet_position"] not in _POSITIONS:
            raise TAVRDeviceError(
                f"device key 'leaflet_position' is {device['leaflet_position']!r}; allowed "
                f"values: {list(_POSITIONS)}"
            )
        changes["leaflet_position"] = device["leaflet_position"]
        if "leaflet_transmission" not in device:
            changes["leaflet_transmission"] = (
                1.0
                if device["leaflet_position"] == "intra"
                else FAMILIES["self_expanding"].leaflet_transmission
            )
    if "leaflet_tissue" in device:
        if device["leaflet_tissue"] not in _TISSUES:
            raise TAVRDeviceError(
                f"device key 'leaflet_tissue' is {device['leaflet_tissue']!r}; allowed values: "
                f"{list(_TISSUES)}"
            )
        changes["leaflet_tissue"] = device["leaflet_tissue"]
    if "leaflet_transmission" in device:
        value = float(device["leaflet_transmission"])
        if not 0.0 <= value <= 1.0:
            raise TAVRDeviceError(
                f"device key 'leaflet_transmission' is {value!r}; allowed: 0 to 1"
            )
        changes["leaflet_transmission"] = value
    if "implant_depth_mm" in device:
        depth = float(device["implant_depth_mm"])
        if not 0.0 <= depth <= 20.0:
            raise TAVRDeviceError(f"device key 'implant_depth_mm' is {depth!r}; allowed: 0 to 20")
        changes["implant_depth_mm"] = (depth, fam.implant_depth_mm[1])
    return replace(fam, **changes) if changes else fam


def select_size(
    family: str,
    annulus_area_mm2: np.ndarray,
    annulus_perimeter_mm: np.ndarray,
    *,
    out_of_chart: str = "nearest",
) -> tuple[np.ndarray, np.ndarray]:
    """Valve size from the annulus by the family's sizing chart (larger size in overlaps).

    Parameters
    ----------
    family : {"balloon_expandable", "self_expanding"}
        Balloon-expandable valves are sized by CT annulus area, self-expanding valves by
        CT annulus perimeter (the manufacturers' charts, see the module docstring).
    annulus_area_mm2 : ndarray, shape (n,)
        CT annulus area (mm²).
    annulus_perimeter_mm : ndarray, shape (n,)
        CT annulus perimeter (mm).
    out_of_chart : {"nearest", "invalid"}
        What to do with an annulus outside every range: the nearest (smallest or largest)
        size, or size 0 (the caller marks the patient ``invalid_input``).

    Returns
    -------
    size_mm : ndarray of int64, shape (n,)
        Labelled valve size; 0 where ``out_of_chart="invalid"`` rejected the patient.
    off_chart : ndarray of bool, shape (n,)
        True where the annulus is outside the chart.

    Raises
    ------
    TAVRDeviceError
        If ``family`` or ``out_of_chart`` is not one of the allowed values.

    Examples
    --------
    >>> import numpy as np
    >>> select_size("balloon_expandable", np.array([340.0, 500.0]), np.array([66.0, 80.0]))[0]
    array([23, 26])
    """
    fam = _family(family)
    if out_of_chart not in _OUT_OF_CHART:
        raise TAVRDeviceError(
            f"setting 'out_of_chart' is {out_of_chart!r}; allowed values: {list(_OUT_OF_CHART)}"
        )
    x = np.asarray(
        annulus_area_mm2 if fam.sizing_variable == "annulus_area_mm2" else annulus_perimeter_mm,
        dtype=np.float64,
    )
    sizes = np.asarray(fam.sizes_mm, dtype=np.int64)
    low = np.asarray(fam.chart_low)
    high = np.asarray(fam.chart_high)
    size = np.zeros(x.shape, dtype=np.int64)
    # Ascending sizes: a later (larger) size that also contains x overwrites a smaller one.
    for k in range(sizes.size):
        size = np.where((x >= low[k]) & (x <= high[k]), sizes[k], size)
    off = size == 0
    if out_of_chart == "nearest":
        size = np.where(off & (x < low[0]), sizes[0], size)
        size = np.where(off & (x > high[-1]), sizes[-1], size)
    return size, off
