"""Reading YAML documents and reporting JSON-Schema violations as one-line errors.

Shared by the population specs (:mod:`cohorts.spec`) and the target tables
(:mod:`cohorts.targets`): every problem becomes ``error(file, dotted key, detail)``, whose
message names the file, the key and what is allowed, never the document's whole content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["load_document", "not_a_mapping", "read_yaml", "validate_document"]

ErrorFactory = Callable[[str, str, str], Exception]


def read_yaml(path: str | Path, label: str, error: ErrorFactory, what: str) -> Any:
    """Parse a YAML file; unreadable, binary or malformed files raise ``error``.

    Parameters
    ----------
    path : str or Path
    label : str
        Name of the file in messages.
    error : callable
        ``error(label, key, detail)`` builds the exception to raise.
    what : str
        What the file should be ("a population spec"), for the messages.
    """
    try:
        text = Path(path).read_text("utf-8")
    except UnicodeDecodeError:
        raise error(label, "<file>", f"not a text file; expected {what} in YAML") from None
    except OSError as exc:
        raise error(label, "<file>", f"cannot read {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(
            label, "<document>", f"not valid YAML{where} ({problem}); expected {what}"
        ) from None


def not_a_mapping(raw: Any, what: str, keys: str) -> str:
    """Detail for a document that is not a mapping (without echoing its content)."""
    kind = {str: "a single text value", list: "a list", type(None): "an empty document"}.get(
        type(raw), f"a {type(raw).__name__}"
    )
    return f"the document is {kind}, not {what}: expected a mapping with the keys {keys}"


def _key(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Most specific error inside oneOf/if-then, by path depth.

    The population schema's ``oneOf`` alternatives are always (0) a direct value - a
    distribution with a ``type`` or a matrix as a list - and (1) a mapping by level; report
    the errors of the alternative the author evidently meant.
    """
    context = list(error.context or ())
    if error.validator == "oneOf" and context:
        inst = error.instance
        meant = 0 if isinstance(inst, list) or (isinstance(inst, dict) and "type" in inst) else 1
        context = [e for e in context if e.relative_schema_path[0] == meant] or context
    best = error
    for sub in context:
        cand = _deepest(sub)
        if len(cand.absolute_path) > len(best.absolute_path) or (
            len(cand.absolute_path) == len(best.absolute_path) and best.validator == "oneOf"
        ):
            best = cand
    return best


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_document(raw: Any, schema: dict, label: str, error: ErrorFactory) -> None:
    """Validate ``raw`` against ``schema``; raise ``error(label, key, detail)`` for the first
    problem (in key order), naming the allowed values or keys."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    err = _deepest(errors[0])
    detail = err.message
    if err.validator == "enum":
        detail = f"{_short(err.instance)} is not allowed; allowed values: {err.validator_value}"
    elif err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        detail = f"{err.message}; allowed keys: {allowed}"
    elif err.validator in ("exclusiveMinimum", "minimum", "maximum", "exclusiveMaximum"):
        op = {"exclusiveMinimum": ">", "minimum": ">=", "maximum": "<=", "exclusiveMaximum": "<"}[
            err.validator
        ]
        detail = f"{_short(err.instance)} is out of range; allowed: {op} {err.validator_value}"
    elif err.validator == "type":
        expected = err.validator_value
        detail = f"{_short(err.instance)} is not of type {expected!r}"
    raise error(label, _key(err.absolute_path), detail)


def load_document(
    source: str | Path | Mapping[str, Any],
    source_file: str | None,
    schema: dict,
    error: ErrorFactory,
    what: str,
    keys: str,
) -> tuple[dict, str]:
    """A YAML file or a mapping, checked to be a mapping that meets ``schema``.

    Returns a plain, independent copy of the document and its label in messages
    (``source_file``, else the path, else ``"<dict>"``); every problem raises
    ``error(label, key, detail)``. ``what`` names the document ("a target table") and
    ``keys`` its expected top-level keys, for the messages.
    """
    if isinstance(source, Mapping):
        label = source_file or "<dict>"
        raw = json.loads(json.dumps(source))
    else:
        label = source_file or str(source)
        raw = read_yaml(source, label, error, what)
    if not isinstance(raw, Mapping):
        raise error(label, "<document>", not_a_mapping(raw, what, keys))
    validate_document(raw, schema, label, error)
    return raw, label
