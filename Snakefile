from snakemake.utils import min_version, validate

min_version("9.0")


# The default trial when snakemake runs in the checkout without `--configfile` (isct always
# passes one); `--configfile` replaces it (not merged, so a trial never inherits another
# trial's keys).
if not config:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/uq.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/credibility.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        report_html(),
