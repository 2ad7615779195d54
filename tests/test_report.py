"""Tests of credibility.report / .tables / .figures: tables from Datasets, the evidence that
feeds the plan, self-contained HTML, PDF, and rendering in headless Chromium."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import GOOD, synthetic_trial
from scipy import ndimage, stats

from credibility.applicability import applicability
from credibility.comparators import load_comparators, load_populations
from credibility.evidence import EvidenceError, collect_evidence
from credibility.figures import STATUS_COLOURS
from credibility.plan import assess, load_plan
from credibility.report import NOT_COMPUTED, ReportError, build_context, render_report
from credibility.statistics import proportion_interval
from credibility.tables import (
    TableError,
    arm_differences,
    failure_table,
    outcome_evidence,
    representation_table,
    results_by_arm,
    subgroup_table,
)
from credibility.validation import validate
from credibility.verification import gci
from models.tavr import TAVRModel

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "credibility" / "plans" / "tavr_small_annuli.yaml"
SECTIONS = (
    "summary", "qoi", "model", "verification", "validation", "uq-sa", "results", "subgroups",
    "failures", "assessment", "limitations", "provenance",
)  # fmt: skip
QOI = ["mean_gradient_mmhg", "eoa_cm2", "ppm_class"]
#: The outcome variable the TAVR comparators' size_mm selects on (the model's size output).
SIZE = "valve_size_mm"
EVENTS = TAVRModel.events
SUBGROUPS = [
    {"label": "sex", "variable": "sex", "source": "s"},
    {"label": "age band", "variable": "age_yr", "edges": [75, 85], "source": "s"},
    {"label": "BMI class", "variable": "bmi_kg_m2", "edges": [18.5, 25, 30],
     "labels": ["<18.5", "18.5–24.9", "25–29.9", "≥30"], "source": "WHO"},
    {"label": "annulus area", "variable": "annulus_area_mm2", "edges": [430], "right": True,
     "labels": ["≤430 mm²", ">430 mm²"], "source": "SMART"},
]  # fmt: skip
CARD = {
    "name": "tavr_lumped",
    "version": "0.1",
    "description": "Lumped LV-valve-arterial model.",
    "inputs": {"annulus_area_mm2": {"units": "mm2", "description": "CT annulus area"}},
    "outputs": [{"name": "eoa_cm2", "units": "cm2", "description": "effective orifice area"}],
    "assumptions": ["rigid leaflets", "no pressure recovery", "Windkessel afterload"],
    "limitations": ["acute haemodynamics only"],
    "references": ["Garcia et al. (2005) J Biomech"],
}


@pytest.fixture(scope="module")
def trial():
    return synthetic_trial(300, seed=5)


@pytest.fixture(scope="module")
def pieces(trial):
    cohort, outcomes = trial
    comps = load_comparators(REPO / "credibility/comparators/tavr.csv")
    val = validate(outcomes, comps, cohort, size_variable=SIZE)
    pops = load_populations(REPO / "credibility/comparators/tavr_populations.csv")
    app = applicability(cohort, pops["severe_as"], on_missing="skip")
    res = gci([6.063, 10.78], [5.972, 10.72], [5.863, 10.60], 1.5, (8000 / 4500) ** 0.5)
    ver = {**res.summary(), "gci": res.to_frame(["mean_gradient_mmhg", "eoa_cm2"])}
    return {"validation": val, "applicability": app, "verification": ver}


# --------------------------------------------------------------------------- tables


def test_results_by_arm_known_answer(trial):
    cohort, outcomes = trial
    table = results_by_arm(
        outcomes, cohort, endpoints=["mean_gradient_mmhg", "eoa_cm2"], events=EVENTS
    ).set_index(["arm", "endpoint"])
    be = outcomes.sel(arm="balloon_expandable")
    ok = be["status"].values == 0
    g = be["mean_gradient_mmhg"].values[ok]
    row = table.loc[("balloon_expandable", "mean_gradient_mmhg")]
    assert row["n"] == g.size == 297
    assert row["estimate"] == pytest.approx(g.mean())
    half = stats.t.ppf(0.975, g.size - 1) * g.std(ddof=1) / np.sqrt(g.size)
    assert row["ci_high"] - row["estimate"] == pytest.approx(half)
    # inverse-ECDF median: the lower middle value for an even count
    assert row["median"] == np.sort(g)[(g.size - 1) // 2]
    assert row["p2_5"] == np.sort(g)[int(np.ceil(0.025 * g.size)) - 1]
    assert row["unit"] == "mmHg"
    ppm = be["ppm_class"].values[ok]
    severe = table.loc[("balloon_expandable", "severe PPM")]
    assert severe["estimate"] == pytest.approx(100 * (ppm == 2).mean())
    lo, hi = proportion_interval((ppm == 2).sum(), ppm.size)
    assert severe["ci_low"] == pytest.approx(100 * lo)
    assert severe["ci_high"] == pytest.approx(100 * hi)


def test_paired_arm_difference(trial):
    cohort, outcomes = trial
    d = arm_differences(outcomes, cohort, events=EVENTS).set_index("endpoint")
    ok = (outcomes["status"].values == 0).all(axis=0)
    x = outcomes["eoa_cm2"].values
    diff = x[1][ok] - x[0][ok]
    assert d.loc["eoa_cm2", "estimate"] == pytest.approx(diff.mean())
    assert d.loc["eoa_cm2", "n"] == ok.sum()
    assert d.loc["eoa_cm2", "comparison"] == "self_expanding − balloon_expandable"
    cls = outcomes["ppm_class"].values
    both = ok & (cls >= 0).all(axis=0)
    share = 100 * ((cls[1][both] == 2).mean() - (cls[0][both] == 2).mean())
    assert d.loc["severe PPM", "estimate"] == pytest.approx(share)
    assert d.loc["severe PPM", "unit"] == "percentage points"
    with pytest.raises(TableError, match="allowed"):
        arm_differences(outcomes, reference="tavi")


def test_subgroups_and_representation(trial):
    cohort, outcomes = trial
    sub = subgroup_table(
        cohort, outcomes, SUBGROUPS, endpoints=["mean_gradient_mmhg"], events=EVENTS
    )
    assert set(sub["subgroup"]) == {"sex", "age band", "BMI class", "annulus area"}
    row = sub[
        (sub.subgroup == "sex") & (sub.level == "female") & (sub.arm == "self_expanding")
        & (sub.endpoint == "mean_gradient_mmhg")
    ]  # fmt: skip
    se = outcomes.sel(arm="self_expanding")
    m = (cohort["sex"].values == 0) & (se["status"].values == 0)
    assert row["estimate"].item() == pytest.approx(se["mean_gradient_mmhg"].values[m].mean())
    obese = sub[
        (sub.level == "≥30") & (sub.endpoint == "severe PPM") & (sub.arm == "self_expanding")
    ]
    mo = (cohort["bmi_kg_m2"].values >= 30) & (se["status"].values == 0)
    assert obese["estimate"].item() == pytest.approx(100 * (se["ppm_class"].values[mo] == 2).mean())
    rep = representation_table(cohort, SUBGROUPS)
    assert rep.groupby("subgroup")["share_pct"].sum().to_numpy() == pytest.approx(100.0)
    small = rep[(rep.subgroup == "annulus area") & (rep.level == "≤430 mm²")]
    assert small["n"].item() == int((cohort["annulus_area_mm2"].values <= 430).sum())


def test_failure_table_names_failing_patients(trial):
    _, outcomes = trial
    counts, failing = failure_table(outcomes)
    c = counts.set_index(["arm", "status"])["n"]
    assert c[("balloon_expandable", "solver_failure")] == 3
    assert c[("self_expanding", "invalid_input")] == 1
    assert c[("balloon_expandable", "ok")] == 297
    f = failing.set_index(["arm", "status"])
    assert f.loc[("balloon_expandable", "solver_failure"), "patients"] == "0, 1, 2"
    assert f.loc[("self_expanding", "invalid_input"), "patients"] == "5"
    ev = outcome_evidence(outcomes)
    assert ev["solver_failure_fraction"] == pytest.approx(3 / 600)
    assert ev["invalid_input_fraction"] == pytest.approx(1 / 600)
    many = outcomes.copy()
    many["status"] = many["status"].copy(data=np.full(many["status"].shape, 3, dtype=np.int8))
    _, failing = failure_table(many)
    assert failing["patients"].iloc[0].endswith("… (+250 more)")


def test_collect_evidence_feeds_the_plan(trial, pieces):
    cohort, outcomes = trial
    ev = collect_evidence(
        verification=pieces["verification"], validation=pieces["validation"],
        applicability=pieces["applicability"], outcomes=outcomes, model_card=CARD,
        stage_chain=[], reproducibility={"resimulation_match": True},
        quantities_of_interest=QOI,
        extra={"code_verification": {"order_error_abs": 0.03}},
    )  # fmt: skip
    assert ev["verification"]["gci_max_pct"] == pytest.approx(2.175, abs=1e-3)
    assert "gci" not in ev["verification"]  # tables stay out of the evidence
    n_validation = (
        load_comparators(REPO / "credibility/comparators/tavr.csv")["role"] == "validation"
    ).sum()
    assert ev["validation"]["n_comparators"] == n_validation
    assert ev["validation"]["qoi_coverage"] == 1.0
    assert ev["model_card"]["n_assumptions"] == 3
    assert ev["simulation"]["solver_failure_fraction"] == pytest.approx(3 / 600)
    assert ev["code_verification"]["order_error_abs"] == 0.03


def test_broken_stage_links_and_rerun_differences_fail_their_factors_and_show():
    link = {
        "reader": "uq", "writer": "simulate", "path": "outcomes.zarr/eoa_cm2/c/0/1",
        "kind": "modified", "expected": "a" * 64, "actual": "b" * 64,
    }  # fmt: skip
    difference = {
        "patient": 17, "arm": "self_expanding", "output": "mean_gradient_mmhg",
        "stored": 12.000000000000002, "resimulated": 12.0,
    }  # fmt: skip
    rerun = {"resimulation_match": False, "patients_checked": 20, "differences": [difference]}
    ev = collect_evidence(stage_chain=[link], reproducibility=rerun)
    assert ev["provenance"] == {"stage_chain_mismatches": 1, "stage_chain": [link]}
    status = assess(load_plan(PLAN), ev).set_index("factor")["status"]
    assert status["software_quality_assurance"] == "fail" and status["use_error"] == "fail"
    ctx = build_context(trial={"name": "t"}, evidence=ev)
    assert "outcomes.zarr/eoa_cm2/c/0/1" in ctx["stage_chain"]["table"]
    assert "aaaaaaaaaaaa…" in ctx["stage_chain"]["table"]  # hashes shortened
    assert "12.000000000000002" in ctx["rerun"]["differences"]  # every digit shown
    clean = collect_evidence(stage_chain=[], reproducibility={"resimulation_match": True})
    status = assess(load_plan(PLAN), clean).set_index("factor")["status"]
    assert status["software_quality_assurance"] == "pass" and status["use_error"] == "pass"
    with pytest.raises(EvidenceError, match="'resimulation_match'"):
        collect_evidence(reproducibility={"patients_checked": 20})


# ----------------------------------------------------------------------------- HTML


class _Dom(HTMLParser):
    """Collects what the tests check: sections, images, the goal table, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.imgs: list[str] = []
        self.external: list[str] = []
        self.goal_status: list[str] = []
        self.goal_achieved: list[str] = []
        self._in_goal = False
        self._cell = 0
        self._row: list[str] = []
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href"):
            v = a.get(key) or ""
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)
        if tag == "link":
            self.external.append(a.get("href", ""))
        if tag == "table" and a.get("id") == "goal-table":
            self._in_goal = True
        if self._in_goal and tag == "tr":
            self._row = []
        if self._in_goal and tag == "td":
            self._text = ""

    def handle_data(self, data):
        self._text += data

    def handle_endtag(self, tag):
        if self._in_goal and tag == "td":
            self._row.append(self._text.strip())
        if self._in_goal and tag == "tr" and self._row:
            self.goal_achieved.append(self._row[6])
            self.goal_status.append(self._row[7])
        if tag == "table":
            self._in_goal = False


def _dom(html: str) -> _Dom:
    d = _Dom()
    d.feed(html)
    return d


@pytest.fixture(scope="module")
def full_report(trial, pieces, tmp_path_factory):
    cohort, outcomes = trial
    plan = load_plan(PLAN)
    ev = collect_evidence(
        verification=pieces["verification"], validation=pieces["validation"],
        applicability=pieces["applicability"], outcomes=outcomes, model_card=CARD,
        stage_chain=[], reproducibility={"resimulation_match": True},
        quantities_of_interest=QOI,
    )  # fmt: skip
    ctx = build_context(
        trial={"name": "tavr_small_annuli", "title": "TAVR in small annuli", "seed": 42},
        cohort=cohort, outcomes=outcomes, cohort_check=None, plan=plan, evidence=ev,
        model_card=CARD, manifest=None, uq=None, sa=None, events=EVENTS, subgroups=SUBGROUPS,
        **pieces,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("report") / "credibility_report.html"
    return render_report(out, context=ctx)


def test_full_report_is_self_contained_and_complete(full_report):
    html = full_report.read_text()
    dom = _dom(html)
    assert dom.sections == list(SECTIONS)
    assert dom.external == []
    assert len(dom.imgs) >= 5 and all(s.startswith("data:image/png;base64,") for s in dom.imgs)
    assert len(dom.goal_status) == 13
    assert set(dom.goal_status) <= {"pass", "partial", "fail", "missing"}
    # pieces absent in this run are marked, not silently dropped
    assert html.count(NOT_COMPUTED) >= 3  # UQ, SA, provenance (and cohort check)
    for table_id in ("results-by-arm", "subgroup-table", "failing-patients", "validation-table"):
        assert f'id="{table_id}"' in html


def test_every_section_renders_when_everything_is_none(tmp_path):
    ctx = build_context(trial={"name": "empty"})
    html = render_report(tmp_path / "r.html", context=ctx).read_text()
    dom = _dom(html)
    assert dom.sections == list(SECTIONS)
    for section in SECTIONS[1:]:
        body = html.split(f'<section id="{section}">')[1].split("</section>")[0]
        assert NOT_COMPUTED in body, section
    with pytest.raises(ReportError, match="'name'"):
        build_context(trial={})


def test_goal_table_follows_evidence_and_thresholds(tmp_path):
    plan = load_plan(PLAN)
    ev = copy.deepcopy(GOOD)
    html = render_report(
        tmp_path / "a.html", context=build_context(trial={"name": "t"}, plan=plan, evidence=ev)
    ).read_text()
    assert _dom(html).goal_status == ["pass"] * 13
    assert "none: every credibility goal of the plan is met" in html
    ev["verification"]["gci_max_pct"] = 7.0  # partial band
    ev["validation"]["fraction_consistent"] = 0.2  # below partial band
    del ev["calibration"]["leave_one_study_out"]
    html = render_report(
        tmp_path / "b.html", context=build_context(trial={"name": "t"}, plan=plan, evidence=ev)
    ).read_text()
    dom = _dom(html)
    expected = ["pass"] * 13
    expected[2], expected[6], expected[10] = "partial", "missing", "fail"
    assert dom.goal_status == expected
    assert dom.goal_achieved[2] == "7"
    assert (
        "discretization error (partial); model inputs (missing); output comparison (fail)" in html
    )
    assert '<a href="#verification">see §4 Verification</a>' in html
    assert "No evidence was computed for: model inputs" in html


def test_comparator_figure_changes_goal_table(trial, tmp_path):
    cohort, outcomes = trial
    plan = load_plan(PLAN)
    se = outcomes.sel(arm="self_expanding")
    g = se["mean_gradient_mmhg"].values[se["status"].values == 0].mean()
    head = "id,study,role,quantity,statistic,arm,value,sd,n,unit,timepoint_days,citation\n"
    statuses = []
    for value in (g, g + 6.0):
        path = tmp_path / f"c{value:.3f}.csv"
        path.write_text(
            head
            + f"x,S,validation,mean_gradient_mmhg,mean,self_expanding,{value:.4f},4,50,mmHg,30,c\n"
        )
        val = validate(outcomes, load_comparators(path), cohort)
        ev = collect_evidence(validation=val)
        ctx = build_context(trial={"name": "t"}, plan=plan, evidence=ev, validation=val)
        dom = _dom(render_report(tmp_path / "r.html", context=ctx).read_text())
        statuses.append(dom.goal_status[10])  # output comparison
    assert statuses == ["pass", "fail"]


def test_uq_sa_datasets_and_extra_figures(tmp_path, trial):
    import xarray as xr
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = tmp_path / "sa_indices.png"
    fig.savefig(png)
    sa = xr.Dataset(
        {"S1": (("output", "input"), np.array([[0.5, 0.2], [0.1, 0.6]]), {"units": "1"})},
        coords={"output": ["mean_gradient_mmhg", "eoa_cm2"], "input": ["eoa_scale", "sv"]},
        attrs={"method": "sobol"},
    )
    ctx = build_context(
        trial={"name": "t"},
        sa=sa,
        figures={"sa_indices": png, "cohort_check": tmp_path / "nope.png"},
    )
    html = render_report(tmp_path / "r.html", context=ctx).read_text()
    body = html.split('<section id="uq-sa">')[1].split("</section>")[0]
    assert "eoa_scale" in body and "sobol" in body and "data:image/png;base64," in body
    assert "Figure &#39;cohort_check&#39; could not be read from" in html


def test_pdf_written(tmp_path):
    ctx = build_context(trial={"name": "pdf"}, plan=load_plan(PLAN), evidence=GOOD)
    out = render_report(tmp_path / "r.html", context=ctx, pdf=True)
    pdf = out.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


# ------------------------------------------------------------------------ Chromium


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI installs it")
    return exe


def _run_chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _chips(png: Path) -> list[tuple[int, int, str]]:
    """Solid status-coloured boxes 40-250 px wide: (y centre, x centre, status)."""
    from matplotlib.image import imread

    img = (imread(png)[..., :3] * 255).round().astype(int)
    found = []
    for status, hexcol in STATUS_COLOURS.items():
        rgb = np.array([int(hexcol[i : i + 2], 16) for i in (1, 3, 5)])
        mask = np.abs(img - rgb).max(axis=-1) <= 6
        labels, _ = ndimage.label(mask)
        for sl in ndimage.find_objects(labels):
            h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            if 40 <= w <= 250 and 10 <= h <= 40:
                found.append(
                    ((sl[0].start + sl[0].stop) // 2, (sl[1].start + sl[1].stop) // 2, status)
                )
    return sorted(found)


def test_report_renders_in_headless_chromium(full_report, tmp_path):
    exe = _chromium()
    shot = tmp_path / "full.png"
    res = _run_chromium(exe, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000",
                        full_report.as_uri())  # fmt: skip
    assert shot.exists(), res.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.std() > 0.05  # not blank
    assert (img.min(axis=-1) < 0.9).mean() > 0.02  # a real share of inked pixels
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", res.stderr)
    dom_run = _run_chromium(exe, tmp_path, "--dump-dom", full_report.as_uri())
    dom = _dom(dom_run.stdout)
    assert len(dom.goal_status) == 13
    assert len(dom.imgs) >= 5 and all(s.startswith("data:image/png;base64,") for s in dom.imgs)
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", dom_run.stderr)


def test_goal_table_region_shows_status_per_factor(tmp_path):
    exe = _chromium()
    ev = copy.deepcopy(GOOD)
    ev["verification"]["gci_max_pct"] = 7.0
    ev["validation"]["fraction_consistent"] = 0.2
    del ev["calibration"]["leave_one_study_out"]
    ctx = build_context(trial={"name": "t"}, plan=load_plan(PLAN), evidence=ev)
    html = render_report(tmp_path / "goal.html", context=ctx)
    expected = _dom(html.read_text()).goal_status
    shot = tmp_path / "goal.png"
    _run_chromium(exe, tmp_path, f"--screenshot={shot}", "--window-size=1280,7000", html.as_uri())
    chips = _chips(shot)
    # the goal table's status column: chips sharing one x position, one per visible row
    xs = np.array([c[1] for c in chips])
    column_x = np.bincount(xs // 20).argmax() * 20
    column = [c for c in chips if column_x <= c[1] < column_x + 20]
    assert len(column) >= 10, chips
    assert [c[2] for c in column] == expected[: len(column)]


def test_uq_inputs_and_nested_verification_tables(tmp_path):
    import xarray as xr

    uq = xr.Dataset(
        {"mean": (("output",), [10.0, 1.5])},
        coords={"output": ["mean_gradient_mmhg", "eoa_cm2"]},
        attrs={"problem": "eoa_scale~normal(mu=1, sigma=0.1); sv~uniform(a=0.9, b=1.1)"},
    )
    assert collect_evidence(uq=uq)["uq"] == {"n_uncertain_inputs": 2}
    assert collect_evidence(uq=uq.assign_attrs(problem=""))["uq"] == {}
    verification = {
        "refinement": 2.0,
        "endpoints": {
            "mean_gradient_mmhg": {"units": "mmHg", "gci_fine_max": 0.012},
            "eoa_cm2": {"units": "cm2", "gci_fine_max": 0.004},
        },
    }
    ctx = build_context(trial={"name": "t"}, verification=verification, uq=uq)
    html = render_report(tmp_path / "r.html", context=ctx).read_text()
    body = html.split('<section id="verification">')[1].split("</section>")[0]
    assert "<h3>endpoints</h3>" in body and "gci_fine_max" in body and "0.012" in body
    assert "refinement" in body


def test_tables_from_lazily_opened_zarr_stores(trial, tmp_path):
    import xarray as xr

    cohort, outcomes = trial
    outcomes.to_zarr(tmp_path / "outcomes.zarr", mode="w", consolidated=False)
    cohort.to_zarr(tmp_path / "cohort.zarr", mode="w", consolidated=False)
    lazy_o = xr.open_zarr(tmp_path / "outcomes.zarr", consolidated=False)
    lazy_c = xr.open_zarr(tmp_path / "cohort.zarr", consolidated=False)
    eager = results_by_arm(outcomes, cohort)
    lazy = results_by_arm(lazy_o, lazy_c)
    np.testing.assert_allclose(lazy["estimate"], eager["estimate"])
    comps = load_comparators(REPO / "credibility/comparators/tavr.csv")
    np.testing.assert_allclose(
        validate(lazy_o, comps, lazy_c, size_variable=SIZE)["predicted"],
        validate(outcomes, comps, cohort, size_variable=SIZE)["predicted"],
    )
    assert len(subgroup_table(lazy_c, lazy_o, SUBGROUPS)) == len(
        subgroup_table(cohort, outcomes, SUBGROUPS)
    )


def test_collect_evidence_covers_every_factor_of_the_default_plan(trial, pieces):
    import xarray as xr

    cohort, outcomes = trial
    uq = xr.Dataset(attrs={"problem": "a~normal(mu=1); b~normal(mu=1); c~normal(mu=1)"})
    ev = collect_evidence(
        verification=pieces["verification"], validation=pieces["validation"],
        applicability=pieces["applicability"], outcomes=outcomes, model_card=CARD, uq=uq,
        stage_chain=[], reproducibility={"resimulation_match": True},
        quantities_of_interest=QOI,
        code_verification={"order_error_abs": 0.02},
        calibration={
            "enabled": True, "leave_one_study_out": {"rms_z": 0.9},
            "model_forms": {"model_to_best_rms_z_ratio": 1.0, "best": "model"},
        },
        cohort={"matched": True, "n_targets": 2, "n_passed": 2, "all_passed": True},
    )  # fmt: skip
    table = assess(load_plan(PLAN), ev)
    assert not (table["status"] == "missing").any(), table[["factor", "evidence", "status"]]


def test_weighted_percentiles_match_repeated_samples(trial):
    cohort, outcomes = trial
    # integer weights == repeating each patient that many times
    w = np.where(cohort["sex"].values == 1, 3.0, 1.0)
    weighted = results_by_arm(outcomes, cohort.assign(sampling_weight=("patient", w)))
    row = weighted.set_index(["arm", "endpoint"]).loc[("self_expanding", "eoa_cm2")]
    se = outcomes.sel(arm="self_expanding")
    ok = se["status"].values == 0
    rep = np.repeat(se["eoa_cm2"].values[ok], w[ok].astype(int))
    assert row["estimate"] == pytest.approx(rep.mean())
    assert row["median"] == np.sort(rep)[int(np.ceil(0.5 * rep.size)) - 1]
    assert row["p97_5"] == np.sort(rep)[int(np.ceil(0.975 * rep.size)) - 1]


def test_an_event_on_per_element_outputs_counts_patients_with_it_in_any_element():
    """Known answer: FFR per lesion (arm, patient, lesion), NaN for absent lesion slots."""
    import xarray as xr

    from models import Event

    nan = np.nan
    ffr = np.array([[[0.70, 0.90], [0.85, 0.95], [nan, nan], [0.81, 0.79]]] * 2)
    ffr[1, 0, 0] = 0.85  # arm b: patient 0 no longer has a lesion <= 0.80
    status = np.zeros((2, 4), dtype=np.int8)
    outcomes = xr.Dataset(
        {
            "ffr": (("arm", "patient", "lesion"), ffr, {"units": "1"}),
            "status": (("arm", "patient"), status),
        },
        coords={"arm": ["a", "b"], "patient": np.arange(4)},
    )
    events = {"low": Event("ffr", "FFR <= 0.80", threshold="<=0.80")}
    table = results_by_arm(outcomes, endpoints=[], events=events).set_index("arm")
    assert set(table["endpoint"]) == {"FFR <= 0.80 (any lesion)"}
    # patients 0 and 3 of the 3 with a lesion (patient 2 has none) in arm a; only 3 in arm b
    assert table.loc["a", "estimate"] == pytest.approx(100 * 2 / 3)
    assert table.loc["b", "estimate"] == pytest.approx(100 * 1 / 3)
    assert table.loc["a", "n"] == 3
