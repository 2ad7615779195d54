"""Print the coronary trial's validation numbers, as recorded in RESULTS.md.

Reads ``results/coronary_ffr/`` (or the folder given) of a finished
``isct run config/trials/coronary_ffr.yaml`` and prints:

* the FAME lesion-substudy rows: the share of lesions with FFR <= 0.80 in each visual
  stenosis band (the band as *read* by the virtual angiogram), published against predicted,
  the difference in percentage points and whether it is within the ±10-point acceptance
  band of issue 12 (beside the statistical verdict of the validation table);
* every other validation row with its verdict;
* the calibration estimates and leave-one-study-out error;
* each stage's wall time from Snakemake's benchmark files.

Usage: ``python benchmarks/coronary_report.py [results/coronary_ffr]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

BAND_PREFIX = "fame_ffr_visual_"
ACCEPTANCE_PP = 10.0


def main(results: Path) -> int:
    val = pd.read_csv(results / "evidence" / "validation.csv")
    bands = val[val["id"].str.startswith(BAND_PREFIX)].copy()
    bands["published_pct"] = 100 * bands["observed"]
    bands["predicted_pct"] = 100 * bands["predicted"]
    bands["diff_pp"] = bands["predicted_pct"] - bands["published_pct"]
    bands["within_10pp"] = bands["diff_pp"].abs() <= ACCEPTANCE_PP
    print(f"== {results}")
    print("\nFAME lesion substudy: lesions with FFR <= 0.80 by visual band (as read)")
    cols = ["id", "published_pct", "predicted_pct", "diff_pp", "within_10pp", "n_virtual"]
    print(bands[cols + ["verdict"]].round(1).to_string(index=False))
    print(f"bands within ±{ACCEPTANCE_PP:g} pp: {int(bands['within_10pp'].sum())}/{len(bands)}")
    rest = val[~val["id"].str.startswith(BAND_PREFIX)]
    print("\nother validation rows")
    print(rest[["id", "observed", "predicted", "n_virtual", "verdict"]].to_string(index=False))
    print(f"\nconsistent: {int((val['verdict'] == 'consistent').sum())}/{len(val)} rows")
    cal = json.loads((results / "calibration" / "calibration.json").read_text())
    if cal.get("enabled"):
        print(
            "\ncalibration (posterior means):", {k: round(v, 3) for k, v in cal["settings"].items()}
        )
        print("leave-one-study-out RMS z:", round(cal["leave_one_study_out"]["rms_z"], 2))
    bench = results / "benchmarks"
    if bench.is_dir():
        times = {p.stem: float(pd.read_csv(p, sep="\t")["s"].iloc[0]) for p in bench.glob("*.tsv")}
        print("\nstage wall times (s):", {k: round(v, 1) for k, v in sorted(times.items())})
        print(f"sum of stage times: {sum(times.values()):.1f} s")
    return 0 if bands["within_10pp"].all() else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/coronary_ffr")))
