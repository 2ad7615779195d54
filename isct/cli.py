"""The ``isct`` command line: run a trial, run one stage, start a trial project, generate a
cohort, inspect, verify; make a key, bundle a trial for submission, replay a bundle.

``isct run`` and ``isct simulate`` write ``results/`` and ``reports/`` under the run directory
(the working directory, or ``--directory``); arguments after ``--`` go to Snakemake.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from ._ahead import AFTER_GO
from .cluster import ENV_PROFILE, ENV_SCHEDULER, ENV_WORKERS, single_threaded_numerics
from .errors import ConfigError, IsctError
from .resources import default_config, workflow_dir
from .runner import run_snakemake

__all__ = ["build_parser", "main", "run"]

#: Subcommands that pass the arguments after ``--`` to Snakemake.
_SNAKEMAKE_COMMANDS = ("run", "simulate")


def _machine_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.scheduler:
        env[ENV_SCHEDULER] = args.scheduler
    if args.cluster_profile:
        env[ENV_PROFILE] = str(_builtin_or_given(args.cluster_profile, "cluster profile"))
    if args.workers:
        env[ENV_WORKERS] = str(args.workers)
    return env


def _builtin_or_given(given: str, what: str) -> Path:
    """A file named on the command line: relative to the working directory, else to isct's
    workflow folder (``config/config.yaml``, ``config/clusters/slurm.yaml`` work anywhere)."""
    path = Path(given)
    if path.is_file() or path.is_absolute():
        return path.resolve()
    builtin = workflow_dir() / path
    if builtin.is_file():
        return builtin
    raise ConfigError(f"{given}: no such {what}, neither {path.resolve()} nor {builtin} (built in)")


def _config_path(given: str | None) -> Path:
    """The trial config of ``isct run``/``simulate``: the path given, or the default trial."""
    return default_config() if given is None else _builtin_or_given(given, "trial config")


def _cmd_run(args: argparse.Namespace) -> int:
    return run_snakemake(args, _config_path(args.config), _machine_env(args))


def _cmd_simulate(args: argparse.Namespace) -> int:
    return run_snakemake(
        args, _config_path(args.config), _machine_env(args), "results/{trial}/simulate.json"
    )


def _cmd_init(args: argparse.Namespace) -> int:
    from .init import init_project

    written = init_project(args.directory, args.template)
    print(f"isct init: wrote a {args.template} trial project to {args.directory}:")
    for path in written:
        print(f"  {path}")
    print(f"Run it: cd {args.directory} && isct run config.yaml")
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    import cohorts

    from .config import resolve_path

    if args.n < 1:
        raise ConfigError(f"--n must be a positive number of patients, got {args.n}")
    if args.match is None:
        given = [
            f"--{k.replace('_', '-')}"
            for k in ("method", "certificate", "size")
            if getattr(args, k)
        ]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --match TARGETS (a target table)")
    spec = cohorts.load_spec(resolve_path(args.spec))
    if args.match is None:
        ds = cohorts.write_cohort(
            spec, args.n, args.out, seed=args.seed, batch_size=args.batch_size
        )
        print(f"wrote {ds.sizes['patient']} patients to {args.out}")
        return 0
    targets = cohorts.load_targets(resolve_path(args.match))
    method = args.method or "weights"
    if method == "fit":  # the cohort is generated from the refitted spec, streamed
        fit = cohorts.fit_spec(spec, targets, seed=args.seed)
        ds = cohorts.write_cohort(
            fit.spec, args.n, args.out, seed=args.seed, batch_size=args.batch_size
        )
        cert = cohorts.certificate(ds.load(), targets, method="fit")
        if args.certificate:
            cohorts.write_certificate(cert, args.certificate)
            import yaml

            path = Path(args.certificate) / "fitted_spec.yaml"
            path.write_text(yaml.safe_dump(fit.spec.raw, sort_keys=False))
        summary = cert.attrs["summary"]
    else:
        candidates = cohorts.sample(spec, args.n, seed=args.seed)
        result = cohorts.match(
            candidates, targets, method=method, size=args.size, max_ratio=args.max_ratio
        )
        result.write(args.out, args.certificate)
        summary = result.summary
    print(
        f"wrote {summary['n_patients']} patients to {args.out}, matched to {targets.name} by "
        f"{method}: {summary['n_passed']} of {summary['n_targets']} targets within their "
        f"sampling intervals, Kish effective n {summary['kish_n']:.0f}"
        + (f"; certificate in {args.certificate}" if args.certificate else "")
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import summarise

    print(summarise(args.path))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    if args.after_go:
        import cohorts  # noqa: F401  (what reading the trial's config imports, while waiting)
        import credibility.comparators  # noqa: F401

        from ._ahead import wait_for_go

        if wait_for_go() is None:
            return 2  # started ahead by the report stage, which then could not write the manifest
    result = verify(
        args.results_dir,
        sample=None if args.all else args.sample,
        seed=args.seed,
        root=args.root,
    )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    if result.unchecked:
        print(
            f"isct verify: {len(result.unchecked)} entry(ies) outside {args.results_dir} not "
            "found and not checked (give --root RUN_DIR to require them):"
        )
        for entry, path in result.unchecked.items():
            print(f"  - {entry}: {path}")
    problems = result.problems()
    if problems:
        print(f"isct verify: {len(problems)} difference(s) in {args.results_dir}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"isct verify: {args.results_dir} matches its manifest and re-simulation")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .signing import fingerprint, keygen, load_private_key

    private, public = keygen(args.key, force=args.force)
    print(f"isct keygen: private key {private} (keep it secret), public key {public}")
    print(f"fingerprint (SHA-256): {fingerprint(load_private_key(private).public_key())}")
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import write_bundle
    from .signing import fingerprint, load_private_key

    key = load_private_key(args.key)
    out = write_bundle(
        args.results_dir, args.output, key=key, root=args.root, wheelhouse=args.wheelhouse
    )
    size = out.stat().st_size / 1e6
    print(
        f"isct bundle: wrote {out} ({size:.1f} MB), signed by key {fingerprint(key.public_key())}"
    )
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay, write_summary

    result = replay(
        args.bundle,
        args.directory,
        sample=None if args.all else args.sample,
        seed=args.seed,
        pubkey=args.pubkey,
        fresh_env=args.fresh_env,
        find_links=args.find_links,
    )
    json_path, html_path = write_summary(result, args.directory)
    for check in result.checks:
        print(f"isct replay: {check['check']}: {check['detail']}")
    print(f"isct replay: compared {result.comparison} ({result.comparison_reason})")
    bad_tables = [t["table"] for t in result.tables if not t["match"]]
    if result.ok:
        print(
            f"isct replay: {len(result.patients)} patient(s) and {len(result.tables)} table(s) "
            f"matched; summary in {html_path} and {json_path}"
        )
        return 0
    print(
        f"isct replay: {len(result.differences)} value(s) differ"
        + (f", tables differ: {', '.join(bad_tables)}" if bad_tables else "")
        + f"; see {html_path}"
    )
    for d in result.differences[:20]:
        print(
            f"  - patient {d['patient']} arm {d['arm']!r} {d['output']}: stored "
            f"{d['stored']!r}, replayed {d['replayed']!r}"
        )
    return 1


def _add_machine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="Snakemake cores")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:port)")
    p.add_argument("--cluster-profile", help="YAML cluster profile (config/clusters/*.yaml)")
    p.add_argument("--workers", type=int, help="worker processes of the embedded LocalCluster")
    p.add_argument(
        "--directory",
        default=".",
        help="run directory: results/ and reports/ are written here, and the config's "
        "relative file paths are looked up here first (default: the working directory)",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show the jobs, run nothing")
    p.add_argument("--forceall", action="store_true", help="rerun every stage")
    p.set_defaults(snakemake_args=[])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"isct {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="run a whole trial through Snakemake",
        epilog="Arguments after -- go to Snakemake, e.g. isct run CONFIG -- --unlock",
    )
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help="trial config YAML (default: the built-in default trial, config/config.yaml)",
    )
    _add_machine_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "simulate",
        help="run the trial up to the simulation stage",
        epilog="Arguments after -- go to Snakemake.",
    )
    p.add_argument("config", help="trial config YAML")
    _add_machine_options(p)
    p.set_defaults(func=_cmd_simulate)

    from .init import TEMPLATES

    p = sub.add_parser(
        "init",
        help="write a new trial project that runs as generated",
        description="Write a trial project (config, population spec, model card, plan, "
        "comparators) into DIRECTORY; run it there with `isct run config.yaml`.",
        epilog="templates: "
        + "; ".join(f"{name} - {t.description}" for name, t in TEMPLATES.items()),
    )
    p.add_argument("directory", help="project folder (created if missing)")
    p.add_argument("--template", choices=list(TEMPLATES), default="blank", help="default: blank")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser(
        "cohort",
        help="generate a virtual cohort from a population spec, optionally matched to a "
        "published baseline table",
    )
    p.add_argument("spec", help="population spec YAML")
    p.add_argument("--n", type=int, required=True, help="number of patients (candidates)")
    p.add_argument("--seed", type=int, required=True, help="root seed")
    p.add_argument("--out", required=True, help="output zarr store")
    p.add_argument("--batch-size", type=int, default=None, help="patients per generation batch")
    p.add_argument("--match", metavar="TARGETS", help="target table YAML to match the cohort to")
    p.add_argument(
        "--method",
        choices=["weights", "select", "fit"],
        help="weights: reweight the N patients; select: keep --size of them by "
        "acceptance-rejection; fit: refit the spec and generate N patients (default weights)",
    )
    p.add_argument("--certificate", metavar="DIR", help="write the calibration certificate here")
    p.add_argument("--size", type=int, help="select: patients to keep (default the table's n)")
    p.add_argument(
        "--max-ratio",
        type=float,
        default=20.0,
        help="weights/select: largest matching weight relative to the base weight",
    )
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
    # the report stage starts this process before the manifest exists (its imports then
    # overlap the manifest's hashing) and writes "go" once it is written
    p.add_argument(AFTER_GO, action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--root",
        help="run directory the manifest's entries outside the results folder (config, "
        "inputs, report) are resolved against; each must then be found (default: the folder "
        "above results/, if the results folder sits in one; else they are checked if found)",
    )
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    p.add_argument("key", help="private key file to write; the public key goes to KEY.pub")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser(
        "bundle",
        help="write a signed submission bundle of a finished trial",
        description="Bundle config, inputs, model source and card, manifest, stores, report, "
        "an environment lock and the per-patient hash tree into one tar, signed with KEY.",
    )
    p.add_argument("results_dir", help="results/<trial> of a finished run")
    p.add_argument("-o", "--output", required=True, help="the bundle to write (NAME.isct.tar)")
    p.add_argument("--key", required=True, help="the sponsor's private key (isct keygen)")
    p.add_argument("--root", help="run directory (default: the folder above results/)")
    p.add_argument(
        "--wheelhouse",
        help="folder of the locked packages' files for hashing (fetched by pip when missing; "
        "default ~/.cache/isct/wheels)",
    )
    p.set_defaults(func=_cmd_bundle)

    p = sub.add_parser(
        "replay",
        help="check and re-run a submission bundle in an empty directory",
        description="Check the signature and every hash of a bundle, re-run sampled patients "
        "(or all) and regenerate the report's tables, and compare; writes replay.json and "
        "replay.html. Exit 0: everything matched; 1: values or tables differ; 2: bad input.",
    )
    p.add_argument("bundle", help="the bundle (NAME.isct.tar)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sample", type=int, default=20, help="patients to re-run (default 20)")
    which.add_argument("--all", action="store_true", help="re-run every patient")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing the patients")
    p.add_argument("--pubkey", help="the sponsor's public key to check the signature with")
    p.add_argument(
        "--fresh-env", action="store_true", help="re-run in a new venv built from the lock"
    )
    p.add_argument("--find-links", help="a wheelhouse for pip when building the fresh venv")
    p.add_argument(
        "--directory",
        default=".",
        help="where to unpack, re-run and write the summary; empty apart from the bundle "
        "(default: the working directory)",
    )
    p.set_defaults(func=_cmd_replay)
    return parser


def _split_snakemake_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``isct run … -- ARGS``: ARGS go to Snakemake whatever the order of isct's own options.

    Split at the first ``--`` before argparse sees it (a ``nargs="*"`` positional would be
    filled early and leave later options unrecognised), for the commands that run Snakemake.
    """
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in _SNAKEMAKE_COMMANDS and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isct`` console script."""
    parser = build_parser()
    own, extra = _split_snakemake_args(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if extra:
        args.snakemake_args = extra
    single_threaded_numerics()  # the same last bits on every machine (and in Snakemake's stages)
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        # bad input (each package's base error) is one line naming what is wrong; a bug is not
        if isinstance(err, _input_errors()):
            print(f"isct: error: {err}", file=sys.stderr)
            return 2
        raise


#: Each package's base error for bad input: (module, class).
_INPUT_ERRORS = (
    ("cohorts.errors", "CohortError"),
    ("credibility.errors", "CredibilityError"),
    ("models.errors", "ModelError"),
)


def _input_errors() -> tuple[type[Exception], ...]:
    """isct's error and those of the packages the command imported (one it never imported
    raised nothing: importing it here would cost every command its import, ≈ 1 s)."""
    found = [
        getattr(sys.modules[module], name)
        for module, name in _INPUT_ERRORS
        if module in sys.modules
    ]
    return (IsctError, *found)


def run() -> None:
    """The ``isct`` console script and ``python -m isct``: :func:`main`, then the process ends
    at once (:func:`isct._exit.exit_now`) instead of tearing down every module it imported."""
    from ._exit import exit_after

    exit_after(main)


if __name__ == "__main__":
    run()
