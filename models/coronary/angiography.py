"""Virtual angiography: how a stenosis is *read*, next to the true lumen.

Decisions in the cath lab use what is read on the angiogram, not the true lumen; trials
report the read. Two reads of every lesion, with published error:

* **Quantitative coronary angiography (QCA).** Edge detection of the reference and the
  minimal lumen diameter, each with an independent error of SD 0.12 mm, the mean repeat
  measurement error of calibrated QCA (Dodge JT Jr, et al. Lumen diameter of normal human
  coronary arteries. Circulation 1992;86:232-246, doi:10.1161/01.cir.86.1.232); no bias.
  ``DS_QCA = 100 · (1 − MLD_read / RD_read)``.
* **Visual estimate.** The clinical (operator) read is on average 8.2 percentage points more
  severe than core-lab QCA, with an SD of the difference of 8.4 points (216 lesions treated
  with PCI at seven US hospitals: Nallamothu BK, et al. Comparison of clinical interpretation
  with visual assessment and quantitative coronary angiography in patients undergoing
  percutaneous coronary intervention in contemporary practice: the Assessing Angiography
  (A2) project. Circulation 2013;127:1793-1800; summary: acc.org journal scan 2013-07-05):
  the operator reads the angiogram, not the QCA software's output, so the visual error is
  independent of the QCA edge-detection error and the published SD of the *difference*
  (8.4) is the sum in quadrature of both reads' errors: ``σ_visual² = 8.4² − σ_QCA²``, with
  ``σ_QCA`` the lesion's QCA error in percentage points (first-order propagation of the two
  0.12 mm errors: ``σ_QCA = 100 · σ_mm / RD · sqrt(1 + (MLD / RD)²)``, about 4-5 points at
  2.5-3.5 mm). So ``DS_visual = DS_true + 8.2 + σ_visual·z``, rounded to a whole percent as
  operators report it, at most 99 % (a lesion with measurable FFR is not occluded); then
  ``DS_visual − DS_QCA`` has mean 8.2 and SD 8.4, as published. (Before version 1.1.0 the
  visual read was ``DS_QCA + 8.2 + 8.4·z``: it inherited the QCA software's random error,
  and its error against the true lumen had SD ``sqrt(8.4² + σ_QCA²)`` instead of
  ``sqrt(8.4² − σ_QCA²)``.) A Chinese multicentre study
  found a larger overestimation (16.0 ± 11.5 points without AMI; Zhang H, et al. JAMA Intern
  Med 2018;178:239-247, China PEACE), the range an uncertainty analysis may use.

The reading errors are per-lesion standard normals drawn from the patient's seed
(:func:`models.streams.patient_normals`), so a lesion is read the same way in every arm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["read_lesions"]


def read_lesions(
    d0_mm: np.ndarray,
    ds_true_pct: np.ndarray,
    effects: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """QCA and visual reads of every lesion.

    Parameters
    ----------
    d0_mm : ndarray, shape (n, k)
        True reference diameter (mm).
    ds_true_pct : ndarray, shape (n, k)
        True diameter stenosis (%).
    effects : mapping
        Standard normals of shape (n, k): ``qca_reference``, ``qca_mld``, ``visual``.
    settings : mapping
        ``qca_diameter_sd_mm``, ``visual_bias_pct``, ``visual_sd_pct`` (scalars or rows of
        shape (n,)), ``measurement`` in {"angiography", "exact"}.

    Returns
    -------
    dict
        ``ds_qca_pct``, ``ds_visual_pct`` and ``d0_qca_mm`` (the QCA reference diameter, used
        to size stents), shape (n, k).
    """
    d0 = np.asarray(d0_mm, dtype=np.float64)
    ds_true = np.asarray(ds_true_pct, dtype=np.float64)
    if settings["measurement"] == "exact":
        return {"ds_qca_pct": ds_true.copy(), "ds_visual_pct": ds_true.copy(), "d0_qca_mm": d0}

    def col(key: str) -> np.ndarray:
        value = np.asarray(settings[key], dtype=np.float64)
        return value[:, None] if value.ndim == 1 else value

    sd = col("qca_diameter_sd_mm")
    mld = d0 * (1.0 - ds_true / 100.0)
    d0_read = np.maximum(d0 + sd * effects["qca_reference"], 0.5)
    mld_read = np.clip(mld + sd * effects["qca_mld"], 0.01 * d0_read, d0_read)
    ds_qca = np.clip(100.0 * (1.0 - mld_read / d0_read), 0.0, 99.0)
    # the visual read's own error: the published SD of visual - QCA less the QCA's share
    sd_qca_pct = 100.0 * sd / d0 * np.sqrt(1.0 + (mld / d0) ** 2)
    sd_visual = np.sqrt(np.maximum(col("visual_sd_pct") ** 2 - sd_qca_pct**2, 0.0))
    visual = ds_true + col("visual_bias_pct") + sd_visual * effects["visual"]
    ds_visual = np.clip(np.rint(visual), 0.0, 99.0)
    return {"ds_qca_pct": ds_qca, "ds_visual_pct": ds_visual, "d0_qca_mm": d0_read}
