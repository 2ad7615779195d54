"""Model cards: read a ``card.yaml``, check it against its schema and against the model.

A card that drifts from its model (another version, an output missing, other units) would
make the credibility report describe a model that did not run; :func:`load_card` refuses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .base import Model
from .errors import ModelError

__all__ = ["ModelCardError", "load_card"]

_SCHEMA = Path(__file__).with_name("card.schema.yaml")


class ModelCardError(ModelError):
    """A model card is malformed or disagrees with its model; names the file and the key."""


def load_card(path: str | os.PathLike, model: Model | None = None) -> dict[str, Any]:
    """Read and check a model card.

    Parameters
    ----------
    path : path
        The card (YAML).
    model : Model, optional
        When given, the card must name this model and version and declare every input and
        output of it with the same units (and no others).

    Returns
    -------
    dict
        The card.

    Raises
    ------
    ModelCardError
        Naming the file, the key and what is expected.
    """
    path = Path(path)
    try:
        card = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ModelCardError(f"{path}: cannot read model card ({err})") from err
    validator = jsonschema.Draft202012Validator(yaml.safe_load(_SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(card), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        key = ".".join(map(str, first.absolute_path)) or "<top level>"
        raise ModelCardError(f"{path}: key '{key}': {first.message}")
    if model is None:
        return card
    problems = []
    for key in ("name", "version"):
        if str(card[key]) != str(getattr(model, key)):
            problems.append(f"key '{key}' is {card[key]!r}, the model's is {getattr(model, key)!r}")
    for group in ("inputs", "outputs"):
        declared = getattr(model, group)
        missing = sorted(set(declared) - set(card[group]))
        extra = sorted(set(card[group]) - set(declared))
        if missing:
            problems.append(f"key '{group}' lacks {missing}")
        if extra:
            problems.append(f"key '{group}' has {extra}, which the model does not declare")
        for name in sorted(set(declared) & set(card[group])):
            if card[group][name]["units"] != declared[name].units:
                problems.append(
                    f"key '{group}.{name}.units' is {card[group][name]['units']!r}, "
                    f"the model's is {declared[name].units!r}"
                )
    if problems:
        raise ModelCardError(
            f"{path}: the card disagrees with model {model.name!r}: " + "; ".join(problems)
        )
    return card
