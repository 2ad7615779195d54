import os

from isct.config import model_of, resolve_path
from isct.resources import default_config

# Paths and input functions shared by the rules. The trial name names every output folder.
TRIAL = config["trial"]["name"]
RESULTS = f"results/{TRIAL}"
REPORTS = f"reports/{TRIAL}"
# A sized trial (config sizing) samples a pool of n_max patients; the simulate stage runs
# waves of it and writes the trial's cohort (its first n_stop patients) beside the outcomes.
SIZED = bool(config.get("sizing"))
COHORT_SAMPLE = f"{RESULTS}/cohort_pool.zarr" if SIZED else f"{RESULTS}/cohort.zarr"
SIZED_OUTPUTS = (
    {
        "cohort": directory(f"{RESULTS}/cohort.zarr"),
        "sizing": f"{RESULTS}/sizing/sizing.json",
    }
    if SIZED
    else {}
)


def report_html():
    return f"{REPORTS}/credibility_report.html"


def trial_path(path):
    """A file the config names: in the run directory (the workdir), else a built-in one."""
    return str(resolve_path(path))


def population_spec(wildcards):
    return trial_path(config["cohort"]["population"])


def target_tables(wildcards):
    """Target tables the cohort is matched to (cohort.match, cohort.populations)."""
    cohort = config["cohort"]
    tables = [cohort["match"]["targets"]] if cohort.get("match") else []
    tables += [p["targets"] for p in cohort.get("populations", [])]
    return [trial_path(t) for t in tables]


def credibility_inputs(wildcards):
    """Plan, comparator and comparator-population files the credibility stage reads."""
    cred = config.get("credibility", {})
    files = (
        cred.get("plan"),
        cred.get("comparators"),
        cred.get("comparator_populations"),
    )
    return [trial_path(p) for p in files if p]


def trial_config_file():
    """The config file this trial runs from (recorded in the manifest)."""
    files = list(workflow.configfiles)
    return str(files[-1]) if files else str(default_config())


def stage_record(stage):
    """provenance/<stage>.json: SHA-256 of what the stage read and wrote (isct.provenance)."""
    return f"{RESULTS}/provenance/{stage}.json"


def results_dir(wildcards, output):
    """results/<trial>, from the manifest's path."""
    return os.path.dirname(output.manifest)


def model_version():
    """name@version of the trial's model: a new model version reruns the stages that use it."""
    model = model_of(config)
    return f"{model.name}@{model.version}"
