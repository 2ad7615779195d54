"""Test solver for ``models.external``: simplified Bernoulli equation, one patient per run.

Reads the patient's peak jet velocity ``velocity_m_s`` (m/s) and valve area ``area_cm2``
(cm2) from a JSON object or a one-row CSV file (chosen by the file suffix) and writes

- ``gradient_mmhg = 4 v**2`` — the simplified Bernoulli equation (Hatle L, Angelsen B,
  Tromsdal A. Br Heart J 1980;43:284-292; the factor 4 mmHg (m/s)^-2 is rho/2 rounded),
- ``flow_ml_s = 100 * area_cm2 * v`` (1 cm2 * 1 m/s = 100 mL/s),
- ``omp_num_threads`` and ``leak`` (1 if ``ISCT_TEST_LEAK`` is set) to check the environment,

as JSON or CSV (again by suffix). Misbehaviour on request, keyed on the patient id:
``--fail ID`` exits with status 3, ``--garbage ID`` writes an unparsable file, ``--hang ID``
starts a grandchild that sleeps, writes its pid to ``grandchild.pid`` and sleeps itself.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("input")
parser.add_argument("output")
parser.add_argument("--patient", type=int, required=True)
parser.add_argument("--fail", type=int, action="append", default=[])
parser.add_argument("--garbage", type=int, action="append", default=[])
parser.add_argument("--hang", type=int, action="append", default=[])
args = parser.parse_args()

if args.input.endswith(".csv"):
    with open(args.input, newline="") as fh:
        (row,) = csv.DictReader(fh)
else:
    with open(args.input) as fh:
        row = json.load(fh)
v = float(row["velocity_m_s"])
area = float(row["area_cm2"])

if args.patient in args.fail:
    print(f"patient {args.patient}: diverged", file=sys.stderr)
    sys.exit(3)
if args.patient in args.hang:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open("grandchild.pid", "w") as fh:
        fh.write(str(child.pid))
    time.sleep(120)

result = {
    "gradient_mmhg": 4.0 * v**2,
    "flow_ml_s": 100.0 * area * v,
    "omp_num_threads": int(os.environ.get("OMP_NUM_THREADS", "-1")),
    "leak": int("ISCT_TEST_LEAK" in os.environ),
}
with open(args.output, "w", newline="") as fh:
    if args.patient in args.garbage:
        fh.write("this is not a result\n")
    elif args.output.endswith(".csv"):
        writer = csv.DictWriter(fh, fieldnames=list(result))
        writer.writeheader()
        writer.writerow(result)
    else:
        json.dump(result, fh)
print(f"patient {args.patient}: done")
