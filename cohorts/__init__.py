"""Virtual patient cohort generation.

Load a population spec (YAML, JSON-Schema validated), sample patients from per-patient
counter-based random streams, stream large cohorts into zarr, and check the result against
the spec's targets.

Examples
--------
>>> import cohorts
>>> spec = cohorts.load_spec(cohorts.population_path("tavr_severe_as"))
>>> ds = cohorts.sample(spec, 1000, seed=2024)
>>> table = cohorts.compare_to_target(spec, ds)

Match a cohort to a published baseline table and certify it (see ``cohorts/README.md``):

>>> targets = cohorts.load_targets("table1.yaml")  # doctest: +SKIP
>>> result = cohorts.match(ds, targets, method="weights")  # doctest: +SKIP
>>> result.certificate, result.summary["all_passed"]  # doctest: +SKIP
"""

from __future__ import annotations

from .certificate import certificate, plot_certificate, write_certificate
from .check import compare_to_target, plot_check
from .energy import energy_distance
from .errors import CohortError, InfeasibleTargetsError, MatchError
from .fitting import SpecFit, fit_spec
from .matching import MatchResult, match
from .sampling import sample, write_cohort
from .spec import CohortSpecError, PopulationSpec, load_spec
from .targets import TargetError, TargetStatistic, TargetTable, load_targets

__all__ = [
    "CohortError",
    "CohortSpecError",
    "InfeasibleTargetsError",
    "MatchError",
    "MatchResult",
    "PopulationSpec",
    "SpecFit",
    "TargetError",
    "TargetStatistic",
    "TargetTable",
    "certificate",
    "compare_to_target",
    "energy_distance",
    "fit_spec",
    "load_spec",
    "load_targets",
    "match",
    "plot_certificate",
    "plot_check",
    "population_path",
    "sample",
    "write_certificate",
    "write_cohort",
]


def population_path(name: str):
    """Path of a population spec shipped in ``cohorts/populations`` (``name`` without .yaml).

    Raises
    ------
    FileNotFoundError
        Unknown name; the message lists the available specs.
    """
    from importlib import resources

    folder = resources.files("cohorts").joinpath("populations")
    path = folder.joinpath(f"{name}.yaml")
    if not path.is_file():
        available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise FileNotFoundError(f"no population spec {name!r}; available: {available}")
    return path
