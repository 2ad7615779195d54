"""Coronary physiology: FFR of every lesion, angiographic reads, decisions and stents.

:class:`CoronaryModel` takes a patient with up to :data:`MAX_LESIONS` lesions (the cohort's
``lesion1_*`` … ``lesion5_*`` slots and ``n_lesions``), computes the FFR a pressure wire would
measure distal to each lesion at maximal hyperaemia (:mod:`models.coronary.vessels`, serial
lesions of one artery in series), reads every lesion on a virtual angiogram
(:mod:`models.coronary.angiography`), decides which lesions to stent by the arm's strategy
(angiography: the visual read ≥ a threshold; FFR: read ≥ 50 % and FFR ≤ 0.80, the FAME
protocol; all; none), deploys the stents (:func:`models.coronary.vessels.deploy_stents`) and
computes the post-PCI FFR. Lesion-level outputs carry the extra dim ``lesion`` (empty slots:
NaN / −1); patient-level outputs summarise them.

Numbers used here and their sources are listed in ``card.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..base import STATUS, Event, Model, Variable
from ..errors import ModelError
from ..streams import patient_normals
from .angiography import read_lesions
from .vessels import N_VESSELS, VESSELS, deploy_stents, vessel_physiology

__all__ = [
    "DEFAULT_SETTINGS",
    "MAX_LESIONS",
    "STRATEGIES",
    "CoronaryModel",
    "CoronarySettingsError",
    "random_effects",
]

#: Lesion slots of the cohort (FAME: 2.78 lesions per patient, Tonino et al. 2010).
MAX_LESIONS = 5
#: Decision rules an arm may use (device key ``strategy``).
STRATEGIES = ("angiography", "ffr", "all", "none")

#: Default settings; every key may be overridden, unknown keys are rejected.
DEFAULT_SETTINGS: dict[str, Any] = {
    # blood and the stenosis law (models.coronary.stenosis)
    "blood_viscosity_mpa_s": 3.5,  # reference notes: 3.5-4 mPa s
    "blood_density_kg_m3": 1050.0,  # reference notes
    "expansion_loss_coefficient": 1.52,  # K_t, Seeley & Young 1976
    "lumen_eccentricity": 1.0,  # calibrated: minimal / maximal lumen diameter at the MLA
    # microvascular and diffuse resistance (models.coronary.vessels)
    "microvascular_resistance_scale": 1.0,  # calibrated: mmHg s/mL per IMR unit at 3 mm
    "resistance_reference_diameter_mm": 3.0,
    "lad_proximal_diameter_mm": 3.7,  # Dodge et al. 1992 (reference_flow_lad_ml_min)
    "flow_diameter_exponent": 7.0 / 3.0,  # Huo & Kassab 2012
    "microvascular_resistance": "patient",  # {"patient", "median"}
    "imr_median_u": 16.6,  # International IMR registry (Lee JM et al. 2015)
    "diffuse_loss_mean": 0.11,  # 1 - FFR 0.89 of non-stenotic arteries, De Bruyne 2001
    "diffuse_loss_sd": 0.08,
    # virtual angiography (models.coronary.angiography)
    "measurement": "angiography",  # {"angiography", "exact"}
    "qca_diameter_sd_mm": 0.12,  # Dodge et al. 1992
    "visual_bias_pct": 8.2,  # A2 project, Nallamothu et al. 2013
    "visual_sd_pct": 8.4,  # SD of visual - QCA; the visual error alone: sqrt(8.4² - SD_QCA²)
    # stents (models.coronary.vessels.deploy_stents)
    "stent_expansion_mean": 0.77,
    "stent_expansion_sd": 0.10,  # assumption (card.yaml)
    "stent_to_reference_ratio": 1.0,  # assumption: sized 1:1 to the QCA reference
    "stent_margin_mm": 4.0,  # assumption: 2 mm beyond each lesion edge
    # flow solver
    "solver_tol": 1e-12,
    "solver_max_iter": 60,
    # time window (CoronaryModel.at_timepoint)
    "max_follow_up_days": 1.0,
}
_CHOICES = {
    "measurement": ("angiography", "exact"),
    "microvascular_resistance": ("patient", "median"),
}
#: Settings that may be arrays of shape (n,) (uncertain or calibrated inputs, per row).
_PER_ROW_SETTINGS = (
    "blood_viscosity_mpa_s",
    "blood_density_kg_m3",
    "expansion_loss_coefficient",
    "lumen_eccentricity",
    "microvascular_resistance_scale",
    "diffuse_loss_mean",
    "diffuse_loss_sd",
    "qca_diameter_sd_mm",
    "visual_bias_pct",
    "visual_sd_pct",
    "stent_expansion_mean",
    "stent_expansion_sd",
    "stent_to_reference_ratio",
)
CALIBRATION_PARAMETERS = ("microvascular_resistance_scale", "lumen_eccentricity")
_ENGINE_KEYS = ("arm", "runs_dir")
_DEVICE_DEFAULTS: dict[str, Any] = {
    "strategy": "angiography",
    "ds_threshold_pct": 50.0,
    "ffr_threshold": 0.80,
    "read": "visual",
}
_DEVICE_CHOICES = {"strategy": STRATEGIES, "read": ("visual", "qca")}
_DEVICE_KEYS = (*_DEVICE_DEFAULTS, "label", *_PER_ROW_SETTINGS)
_VESSEL_ATTRS = {"flag_values": [0, 1, 2], "flag_meanings": " ".join(VESSELS)}


def random_effects(patient_seed: np.ndarray) -> dict[str, np.ndarray]:
    """Standard normals of every patient: per artery ``(n, 3)`` and per lesion slot ``(n, k)``.

    Streams ``coronary.diffuse.<artery>`` (diffuse disease), ``angio.qca_reference.<slot>``,
    ``angio.qca_mld.<slot>``, ``angio.visual.<slot>`` (reading errors) and
    ``stent.expansion.<slot>``; the same in every arm (common random numbers).
    """
    seed = np.asarray(patient_seed)
    per_vessel = patient_normals(seed, [f"coronary.diffuse.{v}" for v in VESSELS])
    out = {"diffuse": np.column_stack([per_vessel[f"coronary.diffuse.{v}"] for v in VESSELS])}
    for name in ("angio.qca_reference", "angio.qca_mld", "angio.visual", "stent.expansion"):
        streams = [f"{name}.{k + 1}" for k in range(MAX_LESIONS)]
        draws = patient_normals(seed, streams)
        out[name.split(".", 1)[1]] = np.column_stack([draws[s] for s in streams])
    return out


class CoronarySettingsError(ModelError):
    """A coronary settings or device mapping has an unknown key or a value out of its set."""


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS) - set(_ENGINE_KEYS))
    if unknown:
        raise CoronarySettingsError(
            f"coronary settings keys {unknown} are unknown; allowed keys: {sorted(DEFAULT_SETTINGS)}"
        )
    out = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if k not in _ENGINE_KEYS}}
    for key, allowed in _CHOICES.items():
        if out[key] not in allowed:
            raise CoronarySettingsError(
                f"coronary setting {key!r} is {out[key]!r}; allowed values: {list(allowed)}"
            )
    if not float(out["solver_tol"]) > 0:
        raise CoronarySettingsError(
            f"coronary setting 'solver_tol' is {out['solver_tol']!r}; allowed: a value > 0"
        )
    return out


def _device(device: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(device) - set(_DEVICE_KEYS))
    if unknown:
        raise CoronarySettingsError(
            f"coronary device keys {unknown} are unknown; allowed keys: {sorted(_DEVICE_KEYS)}"
        )
    out = {**_DEVICE_DEFAULTS, **device}
    for key, allowed in _DEVICE_CHOICES.items():
        if out[key] not in allowed:
            raise CoronarySettingsError(
                f"coronary device key {key!r} is {out[key]!r}; allowed values: {list(allowed)}"
            )
    return out


def _lesion_inputs() -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for k in range(1, MAX_LESIONS + 1):
        out[f"lesion{k}_vessel"] = Variable(
            "1", f"artery of lesion slot {k} (0 LAD, 1 LCx, 2 RCA)", (0, 2), dtype="int8"
        )
        out[f"lesion{k}_ref_mm"] = Variable(
            "mm", f"true reference lumen diameter at lesion {k}", (1.5, 6.0)
        )
        out[f"lesion{k}_ds_pct"] = Variable(
            "%", f"true diameter stenosis of lesion {k}", (0.0, 99.0)
        )
        out[f"lesion{k}_length_mm"] = Variable("mm", f"length of lesion {k}", (1.0, 100.0))
    return out


def _lesion(units: str, description: str, dtype: str = "float64", **attrs: Any) -> Variable:
    return Variable(units, description, dtype=dtype, dims=("lesion",), attrs=attrs, ragged=True)


class CoronaryModel(Model):
    """FFR-guided and angiography-guided PCI of intermediate coronary lesions.

    Device keys (one arm)
    ---------------------
    strategy : {"angiography", "ffr", "all", "none"}
        Which lesions are stented: angiography — the ``read`` diameter stenosis is at least
        ``ds_threshold_pct``; ffr — the visual read is at least ``ds_threshold_pct`` (the
        lesion is indicated, 50 % in FAME) and the FFR at most ``ffr_threshold``; all — every
        lesion; none — no lesion.
    ds_threshold_pct : float, default 50
    ffr_threshold : float, default 0.80
    read : {"visual", "qca"}, default "visual"
        The angiographic read decisions use.
    label : str, optional
        Free text.

    Settings
    --------
    See :data:`DEFAULT_SETTINGS` and ``card.yaml``.

    Examples
    --------
    >>> import numpy as np
    >>> from models import run_batch
    >>> p = {"aortic_pressure_mmhg": [93.0], "venous_pressure_mmhg": [5.0], "imr_u": [16.6],
    ...      "n_lesions": [2], "patient_seed": np.array([7], dtype=np.uint64)}
    >>> for k in range(1, 6):
    ...     p.update({f"lesion{k}_vessel": [k % 3], f"lesion{k}_ref_mm": [3.0],
    ...               f"lesion{k}_ds_pct": [60.0], f"lesion{k}_length_mm": [15.0]})
    >>> out = run_batch(CoronaryModel(), {k: np.asarray(v) for k, v in p.items()},
    ...                 {"strategy": "ffr"}, {"measurement": "exact"})
    >>> int(out["status"][0]), out["ffr"].shape
    (0, (1, 5))
    """

    name: ClassVar[str] = "coronary"
    version: ClassVar[str] = "1.1.0"
    inputs: ClassVar[dict[str, Variable]] = {
        "aortic_pressure_mmhg": Variable(
            "mmHg", "mean aortic pressure at maximal hyperaemia", (40.0, 160.0)
        ),
        "venous_pressure_mmhg": Variable(
            "mmHg", "mean venous (right atrial) pressure", (0.0, 25.0)
        ),
        "imr_u": Variable(
            "mmHg s", "index of microcirculatory resistance (hyperaemic)", (3.0, 150.0)
        ),
        "n_lesions": Variable("1", "number of lesions (filled slots)", (1, MAX_LESIONS), "int8"),
        **_lesion_inputs(),
        "patient_seed": Variable("1", "the patient's random seed (cohort)", dtype="uint64"),
    }
    outputs: ClassVar[dict[str, Variable]] = {
        # patient level
        "ffr_min": Variable("1", "lowest FFR of the patient's lesions (pressure wire)"),
        "n_lesions_ffr_le_080": Variable("1", "lesions with FFR <= 0.80", dtype="int16"),
        "n_lesions_indicated": Variable(
            "1", "lesions read visually >= 50 % diameter stenosis", dtype="int16"
        ),
        "n_vessels_indicated": Variable(
            "1", "arteries with a lesion read visually >= 50 % (>= 2: multivessel)", dtype="int16"
        ),
        "n_vessels_ffr_le_080": Variable(
            "1", "arteries with an indicated lesion whose FFR is <= 0.80", dtype="int16"
        ),
        "lesions_treated": Variable("1", "lesions stented (one stent per lesion)", dtype="int16"),
        "n_discordant": Variable(
            "1",
            "lesions whose angiographic class (visual read >= the arm's threshold) differs "
            "from the physiological class (FFR <= 0.80)",
            dtype="int16",
        ),
        "ffr_post_min": Variable("1", "lowest post-PCI FFR of the patient's diseased arteries"),
        "n_vessels_ischaemic_post": Variable(
            "1", "diseased arteries with post-PCI FFR <= 0.80 (residual ischaemia)", dtype="int16"
        ),
        "reference_flow_lad_ml_min": Variable(
            "mL min-1",
            "hyperaemic flow of the patient's LAD bed through an unobstructed proximal LAD "
            "(3.7 mm, Dodge 1992) with its diffuse disease, as continuous thermodilution measures it",
        ),
        # lesion level (dim lesion; empty slots NaN / -1)
        "lesion_vessel": _lesion("1", "artery of the lesion", "int8", **_VESSEL_ATTRS),
        "ds_true_pct": _lesion("%", "true diameter stenosis"),
        "ds_qca_pct": _lesion("%", "diameter stenosis read by QCA"),
        "ds_visual_pct": _lesion("%", "diameter stenosis read visually (whole percent)"),
        "ffr": _lesion("1", "FFR distal to the lesion before PCI (pressure wire)"),
        "flow_ml_min": _lesion("mL min-1", "hyperaemic flow through the lesion before PCI"),
        "treated": _lesion(
            "1", "lesion stented", "int8", flag_values=[0, 1], flag_meanings="no yes"
        ),
        "ffr_post": _lesion("1", "FFR distal to the lesion after PCI"),
        "vessel_ffr_post": _lesion("1", "post-PCI FFR at the distal end of the lesion's artery"),
        "vessel_first": _lesion(
            "1",
            "1 for the most proximal lesion of its artery (one row per artery)",
            "int8",
            flag_values=[0, 1],
            flag_meanings="no yes",
        ),
        "vessel_treated": _lesion(
            "1",
            "the lesion's artery received a stent",
            "int8",
            flag_values=[0, 1],
            flag_meanings="no yes",
        ),  # fmt: skip
    }
    timepoint_days: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    calibration_parameters: ClassVar[tuple[str, ...]] = CALIBRATION_PARAMETERS
    events: ClassVar[dict[str, Event]] = {
        "ffr_le_080": Event(
            "ffr", "FFR <= 0.80", threshold="<=0.80", source="FAME (Tonino et al. 2009)"
        ),
        "residual_ischaemia": Event(
            "n_vessels_ischaemic_post",
            "an artery with post-PCI FFR <= 0.80",
            threshold=">=1",
            source="FAME threshold applied after PCI",
        ),
        "any_discordance": Event(
            "n_discordant",
            "a lesion classed differently by angiography and FFR",
            threshold=">=1",
            source="Tonino et al. 2010",
        ),
    }

    def code_verification(self) -> dict[str, Any]:
        """Poiseuille limit, closed-form quadratic root and Newton's order of convergence.

        See :func:`models.coronary.verification.code_verification`.
        """
        from .verification import code_verification

        return code_verification()

    def output_dims(self, settings: Mapping[str, Any]) -> dict[str, int]:
        """``{"lesion": MAX_LESIONS}`` (the settings are checked on the way)."""
        _settings(settings)
        return {"lesion": MAX_LESIONS}

    def check(self, device: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Reject unknown settings or device keys and values outside their sets.

        Raises
        ------
        CoronarySettingsError
        """
        _settings(settings)
        _device(device)

    def simulate(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray]:
        """Simulate a batch with one arm's decision rule (vectorised over patients)."""
        s = _settings(settings)
        s.update({k: device[k] for k in _PER_ROW_SETTINGS if k in device})
        dev = _device(device)
        n = np.asarray(patients["aortic_pressure_mmhg"]).shape[0]
        slots = np.arange(MAX_LESIONS)

        def stack(field: str) -> np.ndarray:
            return np.column_stack(
                [np.asarray(patients[f"lesion{k + 1}_{field}"]) for k in slots]
            ).astype(np.float64)

        present = slots[None, :] < np.asarray(patients["n_lesions"])[:, None]
        vessel = stack("vessel").astype(np.int64)
        d0 = stack("ref_mm")
        ds_true = stack("ds_pct")
        length = stack("length_mm")
        mld = d0 * (1.0 - ds_true / 100.0)
        effects = random_effects(patients["patient_seed"])

        pa = np.asarray(patients["aortic_pressure_mmhg"], dtype=np.float64)
        pv = np.asarray(patients["venous_pressure_mmhg"], dtype=np.float64)
        imr = np.asarray(patients["imr_u"], dtype=np.float64)
        if s["microvascular_resistance"] == "median":
            imr = np.full(n, float(s["imr_median_u"]))
        r_ref = np.asarray(s["microvascular_resistance_scale"], dtype=np.float64) * imr
        mean = np.asarray(s["diffuse_loss_mean"], dtype=np.float64)
        sd = np.asarray(s["diffuse_loss_sd"], dtype=np.float64)
        mean, sd = (v[:, None] if v.ndim == 1 else v for v in (mean, sd))
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma2 = np.log1p((sd / mean) ** 2)
            mu = np.log(mean) - 0.5 * sigma2
            diffuse = np.where(mean > 0, np.exp(mu + np.sqrt(sigma2) * effects["diffuse"]), 0.0)
        diffuse = np.clip(diffuse, 0.0, 0.5)

        # the angiogram sees the minor axis of an elliptical lumen; the flow its area
        ecc = np.asarray(s["lumen_eccentricity"], dtype=np.float64)
        ecc = ecc[:, None] if ecc.ndim == 1 else ecc
        mld_flow = np.minimum(mld / np.sqrt(ecc), d0)
        pre = vessel_physiology(pa, pv, r_ref, vessel, present, d0, mld_flow, length, diffuse, s)
        reads = read_lesions(d0, ds_true, effects, s)
        visual, qca = reads["ds_visual_pct"], reads["ds_qca_pct"]
        ffr = pre["ffr"]

        threshold = float(dev["ds_threshold_pct"])
        read = visual if dev["read"] == "visual" else qca
        significant = ffr <= float(dev["ffr_threshold"])
        strategy = dev["strategy"]
        if strategy == "angiography":
            treated = present & (read >= threshold)
        elif strategy == "ffr":
            treated = present & (visual >= threshold) & significant
        elif strategy == "all":
            treated = present.copy()
        else:
            treated = np.zeros_like(present)
        stent = deploy_stents(d0, reads["d0_qca_mm"], length, effects["expansion"], s)
        post = vessel_physiology(
            pa,
            pv,
            r_ref,
            vessel,
            present,
            d0,
            np.where(treated, stent["mld_mm"], mld_flow),
            np.where(treated, stent["length_mm"], length),
            diffuse,
            s,
        )

        indicated = present & (visual >= 50.0)
        member = present[:, None, :] & (vessel[:, None, :] == np.arange(N_VESSELS)[None, :, None])
        vessel_indicated = (member & indicated[:, None, :]).any(axis=2)
        vessel_significant = (member & (indicated & significant)[:, None, :]).any(axis=2)
        vessel_treated = (member & treated[:, None, :]).any(axis=2)
        first_slot = np.argmax(member, axis=2)
        vessel_first = np.zeros_like(present)
        for v in range(N_VESSELS):
            rows = np.flatnonzero(pre["vessel_present"][:, v])
            vessel_first[rows, first_slot[rows, v]] = True
        per_lesion_vessel = np.clip(vessel, 0, N_VESSELS - 1)
        angio_class = present & (read >= threshold)
        if strategy in ("ffr", "all", "none"):
            angio_class = present & (visual >= threshold)
        discordant = present & (angio_class != significant)

        def lesion_float(x: np.ndarray) -> np.ndarray:
            return np.where(present, x, np.nan)

        def lesion_flag(x: np.ndarray) -> np.ndarray:
            return np.where(present, x.astype(np.int8), -1).astype(np.int8)

        post_vessel_ffr = post["vessel_ffr"]
        r_lad = r_ref * (
            float(s["lad_proximal_diameter_mm"]) / float(s["resistance_reference_diameter_mm"])
        ) ** -float(s["flow_diameter_exponent"])
        lad_flow = 60.0 * (pa - pv) * (1.0 - diffuse[:, 0]) / r_lad
        status = np.full(n, STATUS["ok"], dtype=np.int8)
        status[~(pre["converged"] & post["converged"])] = STATUS["solver_failure"]
        return {
            "ffr_min": np.nanmin(np.where(present, ffr, np.inf), axis=1),
            "n_lesions_ffr_le_080": (present & significant).sum(axis=1).astype(np.int16),
            "n_lesions_indicated": indicated.sum(axis=1).astype(np.int16),
            "n_vessels_indicated": vessel_indicated.sum(axis=1).astype(np.int16),
            "n_vessels_ffr_le_080": vessel_significant.sum(axis=1).astype(np.int16),
            "lesions_treated": treated.sum(axis=1).astype(np.int16),
            "n_discordant": discordant.sum(axis=1).astype(np.int16),
            "ffr_post_min": np.nanmin(
                np.where(pre["vessel_present"], post_vessel_ffr, np.inf), axis=1
            ),
            "n_vessels_ischaemic_post": (pre["vessel_present"] & (post_vessel_ffr <= 0.80))
            .sum(axis=1)
            .astype(np.int16),
            "reference_flow_lad_ml_min": lad_flow,
            "lesion_vessel": np.where(present, vessel, -1).astype(np.int8),
            "ds_true_pct": lesion_float(ds_true),
            "ds_qca_pct": lesion_float(qca),
            "ds_visual_pct": lesion_float(visual),
            "ffr": ffr,
            "flow_ml_min": 60.0 * pre["flow_ml_s"],
            "treated": lesion_flag(treated),
            "ffr_post": post["ffr"],
            "vessel_ffr_post": lesion_float(
                np.take_along_axis(post_vessel_ffr, per_lesion_vessel, axis=1)
            ),
            "vessel_first": lesion_flag(vessel_first),
            "vessel_treated": lesion_flag(
                np.take_along_axis(vessel_treated, per_lesion_vessel, axis=1)
            ),
            "status": status,
        }

    def at_timepoint(
        self,
        outputs: Mapping[str, np.ndarray],
        patients: Mapping[str, np.ndarray],
        days: float,
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray] | str:
        """The outputs describe the procedure (pre- and immediately post-PCI, day 0–1).

        Later time points are excluded: restenosis, disease progression and events after
        PCI are not modelled.
        """
        s = _settings(settings)
        if days <= float(s["max_follow_up_days"]):
            return dict(outputs)
        return (
            f"model {self.name} {self.version} describes the procedure (pre- and immediately "
            f"post-PCI, up to {float(s['max_follow_up_days']):g} day); at {days:g} days "
            "restenosis, disease progression and clinical events (not modelled) shape the figure"
        )
