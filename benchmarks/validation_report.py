"""Print the validation and calibration numbers of a finished trial, as recorded in RESULTS.md.

Reads ``results/<trial>/`` (default the default trial) and prints:

* the per-size rows (study "ASE 2024 reference values"): observed vs predicted mean
  gradient and EOA, the error against the ±3 mmHg / ±0.15 cm² acceptance bands, and the
  published SD against the virtual SD with its interval;
* every validation row's verdict, counted; the proportions (event rates) by verdict;
* the excluded rows with their reason;
* the calibration posterior, the leave-one-study-out errors and the model-form comparison;
* the answer up front (small-annulus subgroup, paired differences).

Usage: ``python benchmarks/validation_report.py [results/<trial>]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

pd.set_option("display.width", 200)
pd.set_option("display.max_rows", 200)
pd.set_option("display.max_columns", 30)


def main(results: Path) -> None:
    val = pd.read_csv(results / "evidence" / "validation.csv")
    cal = json.loads((results / "calibration" / "calibration.json").read_text())

    print(f"== {results}")
    per_size = val[val["study"] == "ASE 2024 reference values"].copy()
    band = per_size["quantity"].map({"mean_gradient_mmhg": 3.0, "eoa_cm2": 0.15})
    per_size["within_band"] = per_size["E"].abs() <= band
    print(
        "\nper-size rows (validation): observed vs predicted, acceptance band ±3 mmHg / ±0.15 cm²"
    )
    print(
        per_size[
            ["id", "observed", "predicted", "E", "within_band", "observed_sd", "predicted_sd",
             "predicted_sd_low", "predicted_sd_high", "sd_verdict", "n_virtual"]
        ].to_string(index=False, float_format=lambda x: f"{x:.3g}")
    )  # fmt: skip
    for q in ("mean_gradient_mmhg", "eoa_cm2"):
        rows = per_size[per_size["quantity"] == q]
        print(f"  {q}: {int(rows['within_band'].sum())} of {len(rows)} rows within the band")
    sd_rows = per_size[per_size["sd_verdict"].notna()]
    print(
        f"  published per-size SDs consistent with the virtual SD: "
        f"{int((sd_rows['sd_verdict'] == 'consistent').sum())} of {len(sd_rows)}"
    )

    print("\nall validation rows: verdicts")
    print(val["verdict"].value_counts().to_string())
    props = val[val["statistic"] == "proportion"]
    print(
        f"  proportions: {int((props['verdict'] == 'consistent').sum())} of "
        f"{int((props['verdict'] != 'excluded').sum())} consistent"
    )
    inside = props[(props["verdict"] != "excluded")]
    inside = inside[
        (inside["observed"] >= inside["predicted_low"])
        & (inside["observed"] <= inside["predicted_high"])
    ]
    print(
        f"  published proportion inside the model's 95 % interval: {len(inside)} of {len(props[props['verdict'] != 'excluded'])}"
    )
    shown = val[val["verdict"] != "excluded"][
        ["id", "timepoint_days", "observed", "predicted", "predicted_low", "predicted_high", "E", "u_val", "verdict"]
    ]  # fmt: skip
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    excluded = val[val["verdict"] == "excluded"]
    if len(excluded):
        print("\nexcluded rows")
        for _, r in excluded.iterrows():
            print(f"  {r['id']} ({r['timepoint_days']:.0f} d): {r['note']}")

    print("\ncalibration posterior (fitted to calibration rows only)")
    for name, p in cal["parameters"].items():
        print(
            f"  {name:42s} {p['estimate']:.4g} (SD {p['sd']:.3g}; 95 % {p['ci_low']:.4g}–"
            f"{p['ci_high']:.4g}; prior {p['prior_low']:g}–{p['prior_high']:g})"
        )
    loso = pd.read_csv(results / "calibration" / "calibration_loso.csv")
    print("\nleave-one-study-out predictions of the calibration studies")
    print(loso.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print("  summary:", json.dumps(cal["leave_one_study_out"]))
    print("\nmodel forms (calibrated and cross-validated alike):")
    for form, v in cal["model_forms"]["forms"].items():
        print(
            f"  {form:20s} RMS z {v['rms_z']:.3f}  mean |rel error| {v['mean_abs_rel_error_pct']:.1f} %"
        )
    print(f"  best: {cal['model_forms']['best']}")

    answer = results / "evidence" / "answer_by_arm.csv"
    if answer.is_file():
        print("\nthe answer up front (question subgroup)")
        print(pd.read_csv(answer).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
        print(
            pd.read_csv(results / "evidence" / "answer_paired.csv").to_string(
                index=False, float_format=lambda x: f"{x:.3g}"
            )
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/tavr_small_annuli"))
