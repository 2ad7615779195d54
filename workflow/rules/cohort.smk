rule cohort:
    input:
        population_spec,
        target_tables,
    output:
        store=directory(COHORT_SAMPLE),
        check=report(
            f"{RESULTS}/cohort_check.csv",
            caption="../report/cohort.rst",
            category="Cohort",
        ),
        representation=f"{RESULTS}/cohort_representation.csv",
        certificate=f"{RESULTS}/certificate/summary.json",
        provenance=stage_record("cohort"),
        figure=report(
            f"{RESULTS}/figures/cohort_check.png",
            caption="../report/cohort.rst",
            category="Cohort",
        ),
    log:
        f"{RESULTS}/logs/cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/cohort.tsv"
    conda:
        "../../environment.yml"
    params:
        cohort=config["cohort"],
        subgroups=config["report"]["subgroups"],
        seed=config["trial"]["seed"],
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
