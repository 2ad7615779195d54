# The run stores of the design are a param, not an output, so an interrupted calibration
# resumes them (Snakemake deletes the outputs of an interrupted job).
rule calibrate:
    input:
        credibility_inputs,
        cohort=COHORT_SAMPLE,
    output:
        summary=report(
            f"{RESULTS}/calibration/calibration.json",
            caption="../report/calibration.rst",
            category="Calibration",
        ),
        fit=f"{RESULTS}/calibration/calibration_fit.csv",
        loso=f"{RESULTS}/calibration/calibration_loso.csv",
        provenance=stage_record("calibrate"),
    log:
        f"{RESULTS}/logs/calibrate.log",
    benchmark:
        f"{RESULTS}/benchmarks/calibrate.tsv"
    conda:
        "../../environment.yml"
    threads: workflow.cores
    params:
        model_version=model_version(),
        calibration=config["calibration"],
        model=config["model"],
        arms=config["arms"],
        runs=f"{RESULTS}/calibration/runs",
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
