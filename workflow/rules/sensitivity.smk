rule sensitivity:
    input:
        cohort=f"{RESULTS}/cohort.zarr",
        outcomes=f"{RESULTS}/simulate.json",
    output:
        summary=f"{RESULTS}/sa.json",
        figure=report(
            f"{RESULTS}/figures/sa_indices.png",
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
        outcomes=f"{RESULTS}/outcomes.zarr",
        store=f"{RESULTS}/sa.zarr",
        runs=f"{RESULTS}/sa_runs.zarr",
    script:
        "../scripts/sensitivity.py"
