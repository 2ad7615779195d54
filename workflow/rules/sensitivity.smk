rule sensitivity:
    input:
        calibration=f"{RESULTS}/calibration/calibration.json",
        cohort=f"{RESULTS}/cohort.zarr",
        outcomes=f"{RESULTS}/simulate.json",
    output:
        summary=f"{RESULTS}/sa.json",
        provenance=stage_record("sensitivity"),
        figure=report(
            f"{RESULTS}/figures/sa_indices.png",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
        ),
        convergence=report(
            f"{RESULTS}/figures/sa_convergence.png",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
        ),
    log:
        f"{RESULTS}/logs/sensitivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/sensitivity.tsv"
    conda:
        "../../environment.yml"
    threads: workflow.cores
    params:
        model_version=model_version(),
        sensitivity=config["sensitivity"],
        uncertainty=config["uncertainty"],
        endpoints=config["endpoints"],
        outcomes=f"{RESULTS}/outcomes.zarr",
        store=f"{RESULTS}/sa.zarr",
        runs=f"{RESULTS}/sa_runs.zarr",
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
