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
"""

from __future__ import annotations

from .check import compare_to_target, plot_check
from .errors import CohortError
from .sampling import sample, write_cohort
from .spec import CohortSpecError, PopulationSpec, load_spec

__all__ = [
    "CohortError",
    "CohortSpecError",
    "PopulationSpec",
    "compare_to_target",
    "load_spec",
    "plot_check",
    "population_path",
    "sample",
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
