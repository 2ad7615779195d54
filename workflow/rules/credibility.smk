rule credibility:
    input:
        credibility_inputs,
        calibration=f"{RESULTS}/calibration/calibration.json",
        cohort=f"{RESULTS}/cohort.zarr",
        outcomes=f"{RESULTS}/simulate.json",
    output:
        evidence=f"{RESULTS}/evidence/evidence.json",
        provenance=stage_record("credibility"),
        validation=report(
            f"{RESULTS}/evidence/validation.csv",
            caption="../report/validation.rst",
            category="Validation",
        ),
    log:
        f"{RESULTS}/logs/credibility.log",
    benchmark:
        f"{RESULTS}/benchmarks/credibility.tsv"
    conda:
        "../../environment.yml"
    params:
        model_version=model_version(),
        credibility=config["credibility"],
        endpoints=config["endpoints"],
        outcomes=f"{RESULTS}/outcomes.zarr",
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
