rule report:
    input:
        calibration=f"{RESULTS}/calibration/calibration.json",
        evidence=f"{RESULTS}/evidence/evidence.json",
        cohort=f"{RESULTS}/cohort.zarr",
        outcomes=f"{RESULTS}/simulate.json",
        uq=f"{RESULTS}/uq.json",
        sa=f"{RESULTS}/sa.json",
    output:
        html=report(
            f"{REPORTS}/credibility_report.html",
            caption="../report/credibility_report.rst",
            category="Credibility report",
        ),
        manifest=f"{RESULTS}/manifest.json",
        provenance=stage_record("report"),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../environment.yml"
    params:
        trial=config["trial"],
        report=config["report"],
        results=results_dir,
        configfile=trial_config_file(),
    run:
        from isct.stages.rules import run_rule

        run_rule(rule, config, input, output, params, log, threads)
