"""Transcatheter valve families: sizing charts and reference effective orifice areas.

Every number below is copied from ``shared/reference/tavr.md`` (the project's reference
figures), which gathers the manufacturers' CT-based sizing charts and the
manufacturer-independent echo tables of EOA and mean gradient by valve size at ~30 days.

Sizing rule in overlapping chart ranges
---------------------------------------
The balloon-expandable chart overlaps at 338–345 mm² (20 vs 23 mm) and 540–546 mm²
(26 vs 29 mm); the self-expanding chart shares its boundaries (62.8, 72.3, 81.7 mm). Where an
annulus falls in two ranges, **the larger valve is chosen** (the usual oversizing practice
for sealing, and the choice that lowers the risk of prosthesis–patient mismatch). Annuli
outside the whole chart get the nearest size (``out_of_chart="nearest"``) and are flagged,
or are rejected (``out_of_chart="invalid"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FAMILIES",
    "DeviceFamily",
    "TAVRDeviceError",
    "reference_eoa_cm2",
    "select_size",
]


class TAVRDeviceError(ValueError):
    """A TAVR device description names an unknown family, size or option."""


@dataclass(frozen=True)
class DeviceFamily:
    """One transcatheter valve family.

    Attributes
    ----------
    name : str
        Family key used in device dicts (``"balloon_expandable"``, ``"self_expanding"``).
    label : str
        Human-readable description.
    sizing_variable : {"annulus_area_mm2", "annulus_perimeter_mm"}
        The CT annulus measure that the manufacturer's chart uses.
    sizes_mm : tuple of int
        Labelled valve sizes, ascending.
    chart_low, chart_high : tuple of float
        Lower and upper annulus bound of each size (units of ``sizing_variable``).
    eoa_cm2 : tuple of float
        Echo effective orifice area at ~30 days per size (cm²).
    mean_gradient_mmhg : tuple of float
        Echo (Doppler) mean transvalvular gradient at ~30 days per size (mmHg).
    source : str
        Citation of the numbers.
    """

    name: str
    label: str
    sizing_variable: str
    sizes_mm: tuple[int, ...]
    chart_low: tuple[float, ...]
    chart_high: tuple[float, ...]
    eoa_cm2: tuple[float, ...]
    mean_gradient_mmhg: tuple[float, ...]
    source: str


_SOURCE = (
    "shared/reference/tavr.md: manufacturers' CT-based sizing charts; manufacturer-"
    "independent echo EOA / mean-gradient tables by valve size (~30 days)"
)

#: The two families of the reference table, keyed by the device-dict ``family`` value.
FAMILIES: dict[str, DeviceFamily] = {
    "balloon_expandable": DeviceFamily(
        name="balloon_expandable",
        label="balloon-expandable, intra-annular (SAPIEN 3)",
        sizing_variable="annulus_area_mm2",
        sizes_mm=(20, 23, 26, 29),
        chart_low=(273.0, 338.0, 430.0, 540.0),
        chart_high=(345.0, 430.0, 546.0, 683.0),
        eoa_cm2=(1.22, 1.45, 1.74, 1.89),
        mean_gradient_mmhg=(16.2, 12.8, 10.6, 9.3),
        source=_SOURCE,
    ),
    "self_expanding": DeviceFamily(
        name="self_expanding",
        label="self-expanding, supra-annular (Evolut R/PRO)",
        sizing_variable="annulus_perimeter_mm",
        sizes_mm=(23, 26, 29, 34),
        chart_low=(56.5, 62.8, 72.3, 81.7),
        chart_high=(62.8, 72.3, 81.7, 94.2),
        eoa_cm2=(1.09, 1.69, 1.97, 2.60),
        mean_gradient_mmhg=(15.0, 7.5, 7.9, 6.3),
        source=_SOURCE,
    ),
}

_OUT_OF_CHART = ("nearest", "invalid")


def _family(family: str) -> DeviceFamily:
    try:
        return FAMILIES[family]
    except KeyError:
        raise TAVRDeviceError(
            f"device key 'family' is {family!r}; allowed values: {sorted(FAMILIES)}"
        ) from None


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
        CT annulus perimeter (reference: manufacturers' charts in ``shared/reference/tavr.md``).
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


def reference_eoa_cm2(family: str, size_mm: np.ndarray) -> np.ndarray:
    """Echo EOA (cm²) of a family's labelled size, from the reference table.

    Parameters
    ----------
    family : {"balloon_expandable", "self_expanding"}
    size_mm : array_like of int
        Labelled sizes; each must be in the family's table (0 gives NaN: no valve).

    Returns
    -------
    ndarray of float64
        EOA in cm² (NaN where ``size_mm`` is 0).

    Raises
    ------
    TAVRDeviceError
        If a size is not in the family's table (the message lists the allowed sizes).
    """
    fam = _family(family)
    size = np.asarray(size_mm)
    table = dict(zip(fam.sizes_mm, fam.eoa_cm2, strict=True))
    unknown = sorted({int(s) for s in np.unique(size)} - set(table) - {0})
    if unknown:
        raise TAVRDeviceError(
            f"device key 'size_mm' has {unknown} for family {family!r}; "
            f"allowed sizes: {list(fam.sizes_mm)}"
        )
    out = np.full(size.shape, np.nan)
    for s, eoa in table.items():
        out = np.where(size == s, eoa, out)
    return out
