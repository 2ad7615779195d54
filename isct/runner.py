"""How ``isct run`` and ``isct simulate`` drive Snakemake: the command, the run directory's
stale locks and batch jobs, and the one cluster every stage of the run shares."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path

from ._ahead import AFTER_GO
from .cluster import ENV_PROFILE, ENV_SCHEDULER, ENV_WORKERS, local_cluster, profile_cluster
from .jobqueue import cancel_stale_jobs
from .locks import clear_stale_locks, run_recorded
from .resources import snakefile, workflow_dir
from .trial import load_config

__all__ = ["run_snakemake"]


def run_snakemake(
    args: argparse.Namespace, config_path: Path, env: dict[str, str], target: str | None = None
) -> int:
    """``isct run``/``isct simulate``: the trial of ``config_path`` through Snakemake in the
    run directory (``args.directory``), with one cluster for all its stages; ``env`` is the
    stages' environment (the command line's scheduler, profile or workers). Returns
    Snakemake's exit status."""
    workdir = Path(args.directory).resolve()
    args.snakemake_args = _snakemake_profiles_found(args.snakemake_args)
    cmd = [
        sys.executable,
        "-m",
        "isct._snakemake",  # Snakemake's command line, started ahead, without the slow exit
        AFTER_GO,
        "--snakefile",
        str(snakefile()),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        str(args.cores),
        "--rerun-incomplete",
        "--show-failed-logs",
        # the rules' run: blocks run in Snakemake's own process, not one new process each
        # (isct.stages.running_stage)
        "--force-use-threads",
        *_overlapping_stages(args.snakemake_args),
        *(["--dry-run"] if args.dry_run else []),
        *(["--forceall"] if args.forceall else []),
        *args.snakemake_args,
    ]

    @contextlib.contextmanager
    def prepare():
        # every config problem is reported here, before any work (Snakemake, started ahead,
        # imports meanwhile and runs nothing until told to go)
        config = load_config(config_path, workdir=workdir)
        _clear_stale_locks(workdir, args)
        _cancel_stale_jobs(workdir)
        with _shared_cluster(args, env) as (run_env, start_workers):
            changed = {k: v for k, v in run_env.items() if env.get(k) != v}
            targets = [target.format(trial=config["trial"]["name"])] if target else []
            yield {"env": changed, "args": targets, "then": start_workers}

    workdir.mkdir(parents=True, exist_ok=True)
    return run_recorded(cmd, workdir=workdir, env=env, prepare=prepare)


#: Snakemake arguments that run no job: no cluster is started for them.
_NO_JOBS = ("--unlock", "-n", "--dry-run", "--dryrun", "--lint", "--list", "-l", "--summary")
#: Snakemake executors that run jobs on this machine.
_LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def _snakemake_option(argv: list[str], *names: str) -> str | None:
    """The value of a Snakemake option (``--name VALUE`` or ``--name=VALUE``) in ``argv``."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _snakemake_profiles_found(argv: list[str]) -> list[str]:
    """``argv`` with each ``--profile``/``--workflow-profile`` folder that exists here or in
    isct's workflow folder (``config/clusters/snakemake-slurm``) made absolute: Snakemake runs
    in the run directory, where a relative folder would not be found. Profile names Snakemake
    looks up itself (``~/.config/snakemake/<name>``) pass unchanged."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("--profile", "--workflow-profile") and i + 1 < len(out):
            given = Path(out[i + 1])
            for folder in (given, workflow_dir() / given):
                if not given.is_absolute() and folder.is_dir():
                    out[i + 1] = str(folder.resolve())
                    break
    return out


def _stage_executor(argv: list[str]) -> str:
    """The Snakemake executor of the stage jobs: ``--executor``/``-e``, else the ``executor``
    of a ``--profile``/``--workflow-profile`` folder's ``config.yaml``, else ``local``."""
    executor = _snakemake_option(argv, "--executor", "-e")
    if executor:
        return executor
    for option in ("--profile", "--workflow-profile"):
        folder = _snakemake_option(argv, option)
        if folder and (Path(folder) / "config.yaml").is_file():
            import yaml

            spec = yaml.safe_load((Path(folder) / "config.yaml").read_text()) or {}
            if spec.get("executor"):
                return str(spec["executor"])
    return "local"


def _nothing() -> None:
    return None


@contextlib.contextmanager
def _shared_cluster(args: argparse.Namespace, env: dict[str, str]):
    """One cluster for every stage of this run: yields the stages' environment and a call
    that starts the cluster's workers (when Snakemake is told to go).

    Without a cluster to connect to, each stage would start a cluster and warm its workers
    up (imports, compiled model code) again, and with a job-queue profile submit and wait
    for its own batch jobs. Unless the command line
    or the environment names a scheduler, or Snakemake is asked to run no job, ``isct run``
    starts one cluster, the profile's (``--cluster-profile``: local, SLURM or PBS jobs) or
    an embedded LocalCluster of ``--workers`` (or ``--cores``) single-threaded worker
    processes, and hands its address to every stage (``ISCT_SCHEDULER``). It closes when the
    run ends, cancelling its batch jobs; a LocalCluster of a run killed hard goes with it
    (its workers are child processes), the batch jobs of such a run are cancelled by the
    next run in the directory (:func:`isct.jobqueue.cancel_stale_jobs`).

    When the stages themselves run as batch jobs (a Snakemake executor such as ``slurm``)
    no LocalCluster is started here, on the submit host: each stage job starts its own in
    its allocation, unless a cluster profile's workers (reached from every job) serve them all.
    """
    if args.dry_run or env.get(ENV_SCHEDULER) or any(a in _NO_JOBS for a in args.snakemake_args):
        yield env, _nothing
        return
    workdir = Path(args.directory).resolve()
    # the workers (and any worker the nanny restarts, any batch job) work in the run
    # directory, as the stages do
    start = _nothing
    with contextlib.chdir(workdir), contextlib.ExitStack() as stack:
        if env.get(ENV_PROFILE):
            cluster, address = stack.enter_context(profile_cluster(env[ENV_PROFILE], workdir))
            address = address or cluster.scheduler_address
        elif _stage_executor(args.snakemake_args) in _LOCAL_EXECUTORS:
            workers = int(env.get(ENV_WORKERS) or args.cores)
            cluster = stack.enter_context(local_cluster(workers, start=False))
            address = cluster.scheduler_address
            # the workers start once Snakemake is told to go: until then the cores check the
            # config and import Snakemake; the first stage (the cohort) needs no worker
            start = functools.partial(cluster.scale, workers)
        else:
            address = None
        yield ({**env, ENV_SCHEDULER: address} if address else env), start


#: The rules that claim every core (``threads: workflow.cores``).
ALL_CORE_STAGES = ("calibrate", "simulate", "uq", "sensitivity")


def _overlapping_stages(argv: list[str]) -> list[str]:
    """Snakemake arguments that let independent stages run at the same time.

    Four rules claim every core (``threads: workflow.cores``): run by plain Snakemake, each
    such stage starts a LocalCluster of that many workers, and the claim keeps other jobs
    from competing with it. Under ``isct run`` with stages on this machine every stage
    shares the run's one cluster instead: their model runs are the workers' work, not their
    own, and a claim on Snakemake's cores would only keep Snakemake from starting a job that
    needs no other's outputs. They claim none (``--set-threads RULE=0``), so UQ, sensitivity
    and credibility all start once the trial is simulated (with a claim of one core each,
    UQ waited for credibility on 2 cores), their model runs share the workers and one
    stage's own computing fills the time another waits for them. Stages sent to a batch
    system keep their claim (it sizes their allocations); a ``--set-threads`` on the
    command line, later in Snakemake's arguments, replaces this one.
    """
    if _stage_executor(argv) not in _LOCAL_EXECUTORS:
        return []
    return ["--set-threads", *(f"{rule}=0" for rule in ALL_CORE_STAGES)]


def _cancel_stale_jobs(workdir: Path) -> None:
    cancelled = cancel_stale_jobs(workdir)
    if cancelled:
        print(
            f"isct: cancelled the batch jobs left by a run in {workdir} that no live process "
            f"holds (killed hard?): {'; '.join(cancelled)}",
            file=sys.stderr,
        )


def _clear_stale_locks(workdir: Path, args: argparse.Namespace) -> None:
    locks = clear_stale_locks(workdir)
    if locks.removed:
        names = ", ".join(p.name for p in locks.removed)
        print(
            f"isct: removed stale Snakemake locks in {workdir / '.snakemake' / 'locks'} left "
            f"by a run that no live process holds (killed hard?): {names}",
            file=sys.stderr,
        )
    if locks.kept and "--unlock" not in args.snakemake_args:
        config = f" {args.config}" if args.config else ""
        print(
            f"isct: note: {workdir / '.snakemake' / 'locks'} holds locks isct cannot show to be "
            f"stale ({'; '.join(locks.reasons)}). If no other run is active in {workdir}, "
            f"`isct {args.command}{config} --directory {workdir} -- --unlock` clears them.",
            file=sys.stderr,
        )
