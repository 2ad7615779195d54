"""The ``isct`` command line: run a trial, run one stage, generate a cohort, inspect, verify."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from . import __version__
from .cluster import ENV_PROFILE, ENV_SCHEDULER, ENV_WORKERS
from .config import REPO_ROOT, load_config
from .errors import IsctError

__all__ = ["main"]

DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"


def _machine_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.scheduler:
        env[ENV_SCHEDULER] = args.scheduler
    if args.cluster_profile:
        env[ENV_PROFILE] = str(Path(args.cluster_profile).resolve())
    if args.workers:
        env[ENV_WORKERS] = str(args.workers)
    return env


def _snakemake(args: argparse.Namespace, targets: list[str]) -> int:
    config_path = Path(args.config).resolve()
    load_config(config_path)  # every config problem is reported here, before any work
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO_ROOT / "Snakefile"),
        "--directory",
        str(Path(args.directory).resolve()),
        "--configfile",
        str(config_path),
        "--cores",
        str(args.cores),
        "--rerun-incomplete",
        "--show-failed-logs",
        *(["--dry-run"] if args.dry_run else []),
        *(["--forceall"] if args.forceall else []),
        *args.snakemake_args,
        *targets,
    ]
    return subprocess.call(cmd, env=_machine_env(args))


def _cmd_run(args: argparse.Namespace) -> int:
    return _snakemake(args, [])


def _cmd_simulate(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config).resolve())
    return _snakemake(args, [f"results/{config['trial']['name']}/simulate.json"])


def _cmd_cohort(args: argparse.Namespace) -> int:
    import cohorts

    spec = cohorts.load_spec(args.spec)
    ds = cohorts.write_cohort(spec, args.n, args.out, seed=args.seed, batch_size=args.batch_size)
    print(f"wrote {ds.sizes['patient']} patients to {args.out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import summarise

    print(summarise(args.path))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    result = verify(args.results_dir, sample=None if args.all else args.sample, seed=args.seed)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    problems = result.problems()
    if problems:
        print(f"isct verify: {len(problems)} difference(s) in {args.results_dir}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"isct verify: {args.results_dir} matches its manifest and re-simulation")
    return 0


def _add_machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="Snakemake cores")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:port)")
    p.add_argument("--cluster-profile", help="YAML cluster profile (config/clusters/*.yaml)")
    p.add_argument("--workers", type=int, help="worker processes of the embedded LocalCluster")
    p.add_argument(
        "--directory",
        default=str(REPO_ROOT),
        help="where results/ and reports/ are written (default: the repository)",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show the jobs, run nothing")
    p.add_argument("--forceall", action="store_true", help="rerun every stage")
    p.add_argument(
        "snakemake_args", nargs="*", default=[], help="after --: extra arguments for snakemake"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"isct {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a whole trial through Snakemake")
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="trial config YAML")
    _add_machine_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("simulate", help="run the trial up to the simulation stage")
    p.add_argument("config", help="trial config YAML")
    _add_machine_options(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("cohort", help="generate a virtual cohort from a population spec")
    p.add_argument("spec", help="population spec YAML")
    p.add_argument("--n", type=int, required=True, help="number of patients")
    p.add_argument("--seed", type=int, required=True, help="root seed")
    p.add_argument("--out", required=True, help="output zarr store")
    p.add_argument("--batch-size", type=int, default=None, help="patients per generation batch")
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser("info", help="summarise a store or results folder the workflow wrote")
    p.add_argument("path")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("verify", help="check a results folder against its manifest")
    p.add_argument("results_dir")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sample", type=int, default=100, help="patients to re-simulate")
    which.add_argument("--all", action="store_true", help="re-simulate every patient")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing the patients")
    p.add_argument(
        "--json", help="also write what was checked and every difference to this JSON file"
    )
    p.set_defaults(func=_cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isct`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IsctError as err:
        print(f"isct: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # user-input errors of the packages carry their own messages
        name = type(err).__name__
        if name.endswith(("SpecError", "PlanError", "InputError", "NotFoundError")):
            print(f"isct: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
