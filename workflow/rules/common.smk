# Paths and input functions shared by the rules. The trial name names every output folder.
TRIAL = config["trial"]["name"]
RESULTS = f"results/{TRIAL}"
REPORTS = f"reports/{TRIAL}"


def report_html():
    return f"{REPORTS}/credibility_report.html"


def population_spec(wildcards):
    return config["cohort"]["population"]


def credibility_inputs(wildcards):
    """Plan and comparator files the credibility stage reads (when the config names them)."""
    cred = config.get("credibility", {})
    return [p for p in (cred.get("plan"), cred.get("comparators")) if p]
