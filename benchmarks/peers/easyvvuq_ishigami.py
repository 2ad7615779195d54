"""EasyVVUQ PCE campaigns on Ishigami — runs in the peers' venv (EasyVVUQ needs numpy < 2).

Not part of isct: ``benchmarks/bench_easyvvuq.py`` starts this with the peers' Python and
compares it side by side with isct. For each polynomial order it runs a real EasyVVUQ
campaign (PCESampler, full-tensor Gaussian quadrature, PCEAnalysis) and prints one JSON line:
order, runs, wall time, and the Sobol indices. Two execution modes:

- ``python``: ``ExecutePython`` (the model in-process; EasyVVUQ's own bookkeeping only);
- ``files``: ``CreateRunDirectory`` + ``Encode`` + ``ExecuteLocal`` + ``Decode`` (one run
  directory, input file, process and output file per sample — EasyVVUQ's usual set-up).

Usage: <peers python> easyvvuq_ishigami.py --mode python|files --orders 2 3 4 ...
"""

import argparse
import json
import os
import sys
import tempfile
import time

import chaospy as cp
import easyvvuq as uq
import numpy as np
from easyvvuq.actions import (
    Actions,
    CreateRunDirectory,
    Decode,
    Encode,
    ExecuteLocal,
    ExecutePython,
)

A, B = 7.0, 0.1
MODEL = f"""import json, math, sys
p = json.load(open(sys.argv[1]))
y = math.sin(p["x1"]) + {A} * math.sin(p["x2"]) ** 2 + {B} * p["x3"] ** 4 * math.sin(p["x1"])
json.dump({{"y": y}}, open("output.json", "w"))
"""


def ishigami(params):
    x1, x2, x3 = params["x1"], params["x2"], params["x3"]
    return {"y": float(np.sin(x1) + A * np.sin(x2) ** 2 + B * x3**4 * np.sin(x1))}


def campaign(order, mode, work):
    params = {f"x{i}": {"type": "float", "default": 0.0} for i in (1, 2, 3)}
    if mode == "python":
        actions = Actions(ExecutePython(ishigami))
    else:
        model = os.path.join(work, "ishigami_model.py")
        with open(model, "w") as f:
            f.write(MODEL)
        template = os.path.join(work, "input.template")
        with open(template, "w") as f:
            f.write('{"x1": $x1, "x2": $x2, "x3": $x3}')
        encoder = uq.encoders.GenericEncoder(
            template_fname=template, delimiter="$", target_filename="input.json"
        )
        decoder = uq.decoders.JSONDecoder(target_filename="output.json", output_columns=["y"])
        actions = Actions(
            CreateRunDirectory(root=work, flatten=True),
            Encode(encoder),
            ExecuteLocal(f"{sys.executable} {model} input.json"),
            Decode(decoder),
        )
    c = uq.Campaign(name=f"ishigami{order}{mode}", params=params, actions=actions, work_dir=work)
    vary = {f"x{i}": cp.Uniform(-np.pi, np.pi) for i in (1, 2, 3)}
    c.set_sampler(uq.sampling.PCESampler(vary=vary, polynomial_order=order))
    t0 = time.perf_counter()
    c.execute(sequential=True).collate()
    t_runs = time.perf_counter() - t0
    results = c.analyse(qoi_cols=["y"])
    t_all = time.perf_counter() - t0
    s1 = [float(np.ravel(results.sobols_first("y")[f"x{i}"])[0]) for i in (1, 2, 3)]
    st = [float(np.ravel(results.sobols_total("y")[f"x{i}"])[0]) for i in (1, 2, 3)]
    runs = sum(1 for _ in c.campaign_db.runs())
    return {
        "order": order,
        "mode": mode,
        "runs": runs,
        "wall_s": t_all,
        "runs_s": t_runs,
        "S1": s1,
        "ST": st,
    }


def overhead(samples, work):
    """Per-sample cost of an EasyVVUQ campaign around an almost free in-process model."""
    params = {f"x{i}": {"type": "float", "default": 0.0} for i in (1, 2, 3)}
    c = uq.Campaign(
        name="overhead", params=params, actions=Actions(ExecutePython(ishigami)), work_dir=work
    )
    vary = {f"x{i}": cp.Uniform(-np.pi, np.pi) for i in (1, 2, 3)}
    c.set_sampler(uq.sampling.RandomSampler(vary=vary, max_num=samples))
    t0 = time.perf_counter()
    c.execute(nsamples=samples, sequential=True).collate()
    wall = time.perf_counter() - t0
    runs = sum(1 for _ in c.campaign_db.runs())
    return {"mode": "overhead", "runs": runs, "wall_s": wall, "per_sample_ms": wall / runs * 1e3}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["python", "files", "overhead"], default="python")
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    if args.mode == "overhead":
        with tempfile.TemporaryDirectory(prefix="evvuq-") as work:
            print(json.dumps(overhead(args.samples, work)), flush=True)
        return
    for order in args.orders:
        with tempfile.TemporaryDirectory(prefix="evvuq-") as work:
            print(json.dumps(campaign(order, args.mode, work)), flush=True)


if __name__ == "__main__":
    main()
