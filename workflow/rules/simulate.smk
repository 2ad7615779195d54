# The outcomes store is a param, not an output: Snakemake deletes the outputs of an
# interrupted job before rerunning it, which would throw away every finished region. The
# engine resumes the store itself; the declared output is the run summary.
rule simulate:
    input:
        calibration=f"{RESULTS}/calibration/calibration.json",
        cohort=COHORT_SAMPLE,
    output:
        **SIZED_OUTPUTS,
        summary=f"{RESULTS}/simulate.json",
        provenance=stage_record("simulate"),
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    conda:
        "../../environment.yml"
    threads: workflow.cores
    params:
        model_version=model_version(),
        model=config["model"],
        arms=config["arms"],
        sweep=config["design_sweep"],
        simulation=config["simulation"],
        store=f"{RESULTS}/outcomes.zarr",
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
