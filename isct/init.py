"""``isct init``: write a new trial project that runs as generated.

A template is a trial config, and the project it becomes is that config with every file it
names copied beside it: the population spec, the model card, the credibility plan, the
comparator file and the comparator populations, under the fixed names of
:data:`PROJECT_FILES`, and the config's keys rewritten to them (comments kept). A
template may add files of its own (the blank template's example model). The project then
runs wherever it is: ``cd DIR && isct run config.yaml``.

Templates (:data:`TEMPLATES`) are listed, with their descriptions, in
``config/templates/templates.yaml`` under isct's workflow folder: adding one is an entry
there, not an edit of isct.

A file a template's config names is looked up beside the config, then among isct's built-in
files (:func:`isct.resources.data_root`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import named_files, set_named_file
from .errors import IsctError
from .resources import data_root, workflow_dir

__all__ = ["PROJECT_FILES", "TEMPLATES", "Template", "init_project"]

#: Config key → the file's name in a new project.
PROJECT_FILES: dict[str, str] = {
    "cohort.population": "population.yaml",
    "cohort.match.targets": "targets.yaml",
    "model.card": "model/card.yaml",
    "credibility.plan": "plan.yaml",
    "credibility.comparators": "comparators.csv",
    "credibility.comparator_populations": "comparator_populations.csv",
    "calibration.comparators": "calibration_comparators.csv",
}


@dataclass(frozen=True)
class Template:
    """A trial config a new project starts from.

    Attributes
    ----------
    config : str
        The trial config, relative to isct's workflow folder (:func:`workflow_dir`).
    description : str
        One line for ``isct init --help``.
    extra : tuple of str
        Further files, relative to the config's folder, copied to the same place in the project.
    """

    config: str
    description: str
    extra: tuple[str, ...] = ()


#: Where the templates are listed (relative to isct's workflow folder).
TEMPLATE_LIST = "config/templates/templates.yaml"


def _templates() -> dict[str, Template]:
    path = workflow_dir() / TEMPLATE_LIST
    entries = yaml.safe_load(path.read_text()) or {}
    return {
        name: Template(e["config"], e["description"], tuple(e.get("extra", ())))
        for name, e in entries.items()
    }


#: The templates of ``isct init --template`` (from :data:`TEMPLATE_LIST`).
TEMPLATES: dict[str, Template] = _templates()


def _population_file(key: str) -> str:
    """Project file name of a further population's target table (``cohort.populations[i]``)."""
    index = re.fullmatch(r"cohort\.populations\[(\d+)\]\.targets", key)
    if index is None:
        raise IsctError(f"isct init does not know where to put the file of key {key!r}")
    return f"targets_population_{index.group(1)}.yaml"


def _rewrite(text: str, config: dict, renamed: dict[str, str]) -> str:
    """The config text with each key of ``renamed`` set to its new value, comments kept; a
    YAML dump of the config (without comments) when a value cannot be replaced in place."""
    new_text = text
    for key, new in renamed.items():
        old = named_files(config)[key]
        leaf = re.escape(key.rsplit(".", 1)[-1])
        pattern = re.compile(rf"(\b{leaf}:[ \t]*)(['\"]?){re.escape(old)}\2(?=[\s,}}#]|$)")
        new_text, count = pattern.subn(lambda m, new=new: m.group(1) + new, new_text)
        if count != 1:
            break
    else:
        rewritten = yaml.safe_load(new_text)
        if all(named_files(rewritten).get(k) == v for k, v in renamed.items()):
            return new_text
    config = yaml.safe_load(text)
    for key, new in renamed.items():
        set_named_file(config, key, new)
    return yaml.safe_dump(config, sort_keys=False)


def _source(path: str, beside: Path) -> list[Path]:
    """Where a template's file may be: beside its config, then among isct's built-in files."""
    p = Path(path)
    return [p] if p.is_absolute() else [beside / p, data_root() / p]


def _plan(template: str) -> tuple[str, dict[Path, Path]]:
    """The new config text and every file to copy (source → path in the project)."""
    if template not in TEMPLATES:
        raise IsctError(f"unknown template {template!r}; available: {', '.join(TEMPLATES)}")
    spec = TEMPLATES[template]
    config_file = workflow_dir() / spec.config
    if not config_file.is_file():
        raise IsctError(
            f"template {template!r} needs {spec.config}, which this installation of isct "
            f"lacks ({config_file}); available templates: "
            + ", ".join(n for n, t in TEMPLATES.items() if (workflow_dir() / t.config).is_file())
        )
    text = config_file.read_text()
    config = yaml.safe_load(text)
    copies: dict[Path, Path] = {}
    renamed: dict[str, str] = {}
    missing: list[str] = []
    for key, value in named_files(config).items():
        name = PROJECT_FILES.get(key) or _population_file(key)
        places = _source(value, config_file.parent)
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            missing.append(f"key '{key}' names {value!r}: not at {' nor '.join(map(str, places))}")
            continue
        copies[found] = Path(name)
        renamed[key] = name
    for extra in spec.extra:
        source = config_file.parent / extra
        if source.is_file():
            copies[source] = Path(extra)
        else:
            missing.append(f"{source} (a file of the template)")
    if missing:
        raise IsctError(
            f"template {template!r} ({config_file}) needs files this installation of isct "
            "lacks:\n  " + "\n  ".join(missing)
        )
    return _rewrite(text, config, renamed), copies


def init_project(directory: str | os.PathLike, template: str = "blank") -> list[Path]:
    """Write a new trial project into ``directory`` from a template.

    Parameters
    ----------
    directory : str or path
        The project folder; created if missing. No file the project needs may exist there.
    template : str
        A name of :data:`TEMPLATES` (``config/templates/templates.yaml``).

    Returns
    -------
    list of pathlib.Path
        The files written, ``config.yaml`` first.

    Raises
    ------
    IsctError
        If the template is unknown or its files are missing from this installation, a file
        would be overwritten, or the generated config does not validate (a broken template).
    """
    from .trial import load_config

    target = Path(directory)
    text, copies = _plan(template)
    written = [Path("config.yaml"), *copies.values()]
    clash = [str(target / p) for p in written if (target / p).exists()]
    if clash:
        raise IsctError(f"isct init: would overwrite {', '.join(clash)}; choose a new folder")
    target.mkdir(parents=True, exist_ok=True)
    # build the project beside its destination and check it runs before moving it in
    with tempfile.TemporaryDirectory(prefix=".isct-init-", dir=target) as tmp:
        staging = Path(tmp)
        (staging / "config.yaml").write_text(text)
        for source, name in copies.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staging / name)
        load_config(staging / "config.yaml", workdir=staging)
        for name in written:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target / name)
    return [target / p for p in written]
