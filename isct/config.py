"""Trial configuration: load, validate against the schema, fill defaults, check named files.

Every problem is reported at once, before any work starts, as a :class:`ConfigError` whose
message names the file, the key (dotted path) and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError
from .frozen import thaw
from .resources import resolve_data_path, schema_path

__all__ = [
    "FILE_KEYS",
    "model_of",
    "named_files",
    "set_named_file",
    "resolve_path",
    "uncertainty_problem",
    "validate_config",
]

#: Config keys that name files. A relative path is looked up in the run directory, then among
#: isct's built-in files (:func:`isct.resources.resolve_data_path`).
FILE_KEYS = (
    "cohort.population",
    "cohort.match.targets",
    "model.card",
    "credibility.plan",
    "credibility.comparators",
    "credibility.comparator_populations",
    "calibration.comparators",
)


def _schema() -> dict:
    return yaml.safe_load(schema_path().read_text())


def _with_defaults(validator_cls):
    """A validator that also fills ``default`` values of properties (as Snakemake's validate)."""
    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = _copy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


def _key(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
    return "".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError, source: str) -> Iterator[str]:
    key = _key(error.absolute_path)
    schema = error.schema
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        for name in extra:
            full = f"{key}.{name}" if error.absolute_path else name
            hint = difflib.get_close_matches(name, allowed, n=1)
            did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
            yield f"{source}: unknown key '{full}'{did_you_mean}; allowed here: {', '.join(allowed)}"
    elif error.validator == "required":
        yield f"{source}: key '{key}' is missing a required entry: {error.message.split()[0]}; required: {', '.join(schema['required'])}"
    elif error.validator == "type":
        expected = (
            schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        )
        yield f"{source}: key '{key}' must be of type {expected}, got {error.instance!r}"
    elif error.validator == "enum":
        yield f"{source}: key '{key}' is {error.instance!r}; allowed: {', '.join(map(str, schema['enum']))}"
    elif error.validator in ("minimum", "exclusiveMinimum", "maximum", "minItems"):
        yield f"{source}: key '{key}' = {error.instance!r} violates {error.validator} {error.validator_value!r}"
    elif error.validator == "pattern":
        yield f"{source}: key '{key}' = {error.instance!r} must match {error.validator_value!r} (letters, digits, _ . -)"
    else:
        yield f"{source}: key '{key}': {error.message}"


def validate_config(
    config: dict, *, source: str = "<config>", workdir: str | os.PathLike | None = None
) -> dict:
    """Validate ``config`` in place against the trial schema and fill defaults.

    Parameters
    ----------
    config : dict
        Parsed YAML. Modified in place (defaults filled).
    source : str
        File name used in messages.
    workdir : str or path, optional
        The run directory, where relative file paths of the config are looked up first
        (then among isct's built-in files); default the current working directory.

    Returns
    -------
    dict
        ``config`` itself.

    Raises
    ------
    ConfigError
        Listing every problem: unknown keys (with a close match), wrong types, missing keys,
        values out of range, unknown model names and missing files.
    """
    if not isinstance(config, dict):
        raise ConfigError(
            f"{source}: a trial config is a mapping with keys trial, cohort, model, arms"
        )
    validator = _with_defaults(jsonschema.Draft202012Validator)(_schema())
    messages: list[str] = []
    for error in sorted(
        validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
    ):
        messages.extend(_describe(error, source))
    if not messages:
        messages.extend(_check_references(config, source, workdir))
    if messages:
        raise ConfigError("invalid trial config:\n  " + "\n  ".join(dict.fromkeys(messages)))
    return config


def named_files(config: Mapping[str, Any]) -> dict[str, str]:
    """The files a trial config names: key of :data:`FILE_KEYS` → path as written."""
    values = {}
    for key in FILE_KEYS:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node:
            values[key] = node
    cohort = config.get("cohort") if isinstance(config, Mapping) else None
    for i, population in enumerate((cohort or {}).get("populations") or ()):
        if isinstance(population, Mapping) and population.get("targets"):
            values[f"cohort.populations[{i}].targets"] = population["targets"]
    return values


def set_named_file(config: dict, key: str, value: Any) -> None:
    """Set the file of a key of :func:`named_files` (e.g. ``cohort.populations[0].targets``)."""
    *parents, leaf = key.split(".")
    node: Any = config
    for part in parents:
        name, _, index = part.partition("[")
        node = node[name]
        if index:
            node = node[int(index.rstrip("]"))]
    node[leaf] = value


def _check_named_files(
    files: Mapping[str, str | None], source: str, workdir: str | os.PathLike | None
) -> Iterator[str]:
    """Load every file the config names with its own validator, so a bad population spec,
    plan or comparator table stops the run before any work too."""
    import cohorts
    from credibility.comparators import ComparatorError, load_comparators, load_populations
    from credibility.plan import PlanError, load_plan

    checks = {
        "cohort.population": (cohorts.load_spec, cohorts.CohortSpecError),
        "credibility.plan": (load_plan, PlanError),
        "credibility.comparators": (load_comparators, ComparatorError),
        "credibility.comparator_populations": (load_populations, ComparatorError),
        "calibration.comparators": (load_comparators, ComparatorError),
    }
    for key in files:  # target tables: the matched population and the further ones
        if key.endswith(".targets"):
            checks[key] = (cohorts.load_targets, cohorts.CohortError)
    for key, (load, error) in checks.items():
        if files.get(key):
            try:
                load(resolve_path(files[key], workdir=workdir))
            except (error, ValueError) as err:
                yield f"{source}: key '{key}' names a file with a problem: {err}"


def resolve_path(path: str | os.PathLike, *, workdir: str | os.PathLike | None = None) -> Path:
    """A file a trial config names: absolute, or relative to the run directory, else to the
    folder of isct's built-in files (:func:`isct.resources.resolve_data_path`).

    Parameters
    ----------
    path : str or path
        As written in the config.
    workdir : str or path, optional
        The run directory; default the current working directory (the run directory in every
        workflow stage).

    Returns
    -------
    pathlib.Path
        The first place the file exists, else its place in the run directory.
    """
    return resolve_data_path(path, workdir=workdir)[0]


def _check_references(
    config: Mapping[str, Any], source: str, workdir: str | os.PathLike | None = None
) -> Iterator[str]:
    from models import ModelNotFoundError

    files = named_files(config)
    missing = False
    for key, path in files.items():
        found, looked = resolve_data_path(path, workdir=workdir)
        if not found.is_file():
            missing = True
            places = " nor ".join(str(p) for p in looked)
            yield (
                f"{source}: key '{key}' names {path!r}, which is neither {places}; a relative "
                "path is looked up in the run directory (the working directory or --directory), "
                "then among isct's built-in files"
            )
    if not missing:
        yield from _check_named_files(files, source, workdir)
    try:
        model = model_of(config, source=source, workdir=workdir)
    except (ModelNotFoundError, TypeError) as err:
        yield f"{source}: key 'model.name': {err}"
        return
    except ValueError as err:  # the model's own check of its options names the key
        yield f"{source}: key 'model.options': {err}"
        return
    from .engine import expand_arms

    try:
        arms = expand_arms(config["arms"], config.get("design_sweep"))
    except ValueError as err:
        yield f"{source}: key 'arms': {err}"
        arms = []
    settings = config["model"].get("settings", {})
    try:
        model.output_dims(settings)
    except ValueError as err:
        yield f"{source}: key 'model.settings': {err}"
    else:
        index = {a["name"]: i for i, a in enumerate(config["arms"])}
        for arm in arms:
            try:
                model.check(arm["device"], settings)
            except ValueError as err:
                where = index.get(arm["name"].split("[")[0], "?")
                yield f"{source}: key 'arms[{where}].device' (arm {arm['name']!r}): {err}"
    if config.get("uncertainty", {}).get("parameters"):
        try:
            uncertainty_problem(config, source=source)
        except ValueError as err:
            yield str(err)
    card = config["model"].get("card")
    if card:
        from models import ModelCardError, load_card

        try:
            load_card(resolve_path(card, workdir=workdir), model)
        except ModelCardError as err:
            yield f"{source}: key 'model.card': {err}"
    endpoints = config.get("endpoints", [])
    unknown = [e for e in endpoints if e not in model.outputs]
    if unknown:
        yield f"{source}: key 'endpoints' has {unknown}, not outputs of model {model.name!r}; allowed: {', '.join(model.outputs)}"
    names = [a["name"] for a in config["arms"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        yield f"{source}: key 'arms' repeats names {dupes}; arm names must be unique"
    yield from _check_sizing(config, model, [a["name"] for a in arms], source)


def _check_contrast(item: Mapping[str, Any], key: str, model, arm_names, source) -> Iterator[str]:
    """Endpoint, event definition and contrast of a sizing or planning entry."""
    if item["endpoint"] not in model.outputs:
        yield (
            f"{source}: key '{key}.endpoint' is {item['endpoint']!r}, not an output of model "
            f"{model.name!r}; allowed: {', '.join(model.outputs)}"
        )
    if item.get("category") and item.get("threshold"):
        yield f"{source}: key '{key}': give 'category' or 'threshold', not both"
    if len(arm_names) < 2 and not item.get("contrast"):
        yield f"{source}: key '{key}.contrast': a trial of one arm has no contrast to size"
        return
    from credibility.planning import contrast_of

    contrast = contrast_of(item, arm_names)
    unknown = [a for a in contrast if a not in arm_names]
    if unknown:
        yield (
            f"{source}: key '{key}.contrast' names {unknown}, which are not two arms "
            f"of the trial; allowed: {arm_names}"
        )
    elif contrast[0] == contrast[1]:
        yield f"{source}: key '{key}.contrast' compares arm {contrast[0]!r} with itself"


def _check_sizing(config: Mapping[str, Any], model, arm_names, source) -> Iterator[str]:
    sizing = config.get("sizing")
    if sizing:
        yield from _check_contrast(sizing, "sizing", model, arm_names, source)
        n = config["cohort"]["n"]
        n_max = sizing.get("n_max", n)
        batch = min(config["simulation"]["batch_size"], n)
        if n_max != n:
            yield (
                f"{source}: key 'sizing.n_max' is {n_max} but 'cohort.n' is {n}: the sized "
                "trial draws its waves from the cohort, so n_max is the cohort's size; set both "
                "alike or leave sizing.n_max out"
            )
        if sizing["n_min"] > n_max:
            yield f"{source}: key 'sizing.n_min' ({sizing['n_min']}) exceeds n_max ({n_max})"
        for key in ("n_min", "wave"):
            if sizing[key] % batch:
                yield (
                    f"{source}: key 'sizing.{key}' is {sizing[key]}, not a multiple of "
                    f"'simulation.batch_size' ({batch}); a look falls between batches only at "
                    "a multiple of the batch size"
                )
        match = config["cohort"].get("match") or {}
        if match.get("method", "weights") == "weights" and match:
            yield (
                f"{source}: key 'sizing' needs an unweighted cohort, but 'cohort.match.method' "
                "is 'weights'; allowed with sizing: 'select', 'fit' (or no cohort.match)"
            )
    for i, item in enumerate(config.get("planning") or ()):
        key = f"planning[{i}]"
        yield from _check_contrast(item, key, model, arm_names, source)
        if item["hypothesis"] == "non_inferiority" and (
            item.get("margin") is None or item.get("better") is None
        ):
            yield (
                f"{source}: key '{key}': a non-inferiority design needs 'margin' (> 0) and "
                "'better' (higher or lower)"
            )


def model_of(
    config: Mapping[str, Any],
    *,
    source: str = "<config>",
    workdir: str | os.PathLike | None = None,
):
    """The model instance a trial config names, built with its ``model.options``.

    An external solver's relative paths (``executable``, ``template_file``, ``{base_dir}``)
    are relative to the run directory ``workdir`` (default the current working directory).
    """
    from models import get_model

    name = config["model"]["name"]
    options = thaw(config["model"].get("options") or {})
    if name == "external":
        options.setdefault("source", source)
        options.setdefault("base_dir", str(Path.cwd() if workdir is None else Path(workdir)))
    return get_model(name, **options)


def uncertainty_problem(config: Mapping[str, Any], *, source: str = "<config>"):
    """The :class:`credibility.uq.Problem` of the config's ``uncertainty`` parameters."""
    from credibility.uq import problem_from_config

    block = config.get("uncertainty", {})
    return problem_from_config(
        {"parameters": block.get("parameters", {}), "correlation": block.get("correlation", {})},
        source=source,
    )
