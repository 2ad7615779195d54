rule uq:
    input:
        calibration=f"{RESULTS}/calibration/calibration.json",
        cohort=f"{RESULTS}/cohort.zarr",
        outcomes=f"{RESULTS}/simulate.json",
    output:
        summary=f"{RESULTS}/uq.json",
        provenance=stage_record("uq"),
        figure=report(
            f"{RESULTS}/figures/uq_intervals.png",
            caption="../report/uq.rst",
            category="Uncertainty",
        ),
    log:
        f"{RESULTS}/logs/uq.log",
    benchmark:
        f"{RESULTS}/benchmarks/uq.tsv"
    conda:
        "../../environment.yml"
    threads: workflow.cores
    params:
        model_version=model_version(),
        uncertainty=config["uncertainty"],
        endpoints=config["endpoints"],
        outcomes=f"{RESULTS}/outcomes.zarr",
        store=f"{RESULTS}/uq.zarr",
        runs=f"{RESULTS}/uq_runs.zarr",
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
