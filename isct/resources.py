"""Where isct finds its workflow and built-in files, from a checkout or an installed wheel.

The repository keeps ``Snakefile``, ``workflow/`` and ``config/`` at its top level; the wheel
carries a copy of them as ``isct/_workflow/`` (``setup.py`` copies them at build time). The
built-in population specs, model cards, plans, comparators and report templates are package
data of ``cohorts``, ``models`` and ``credibility``, so they sit under the directory that holds
those packages: the checkout, or ``site-packages``.

=====================  =========================  ===============================
function               source checkout, editable  installed wheel
=====================  =========================  ===============================
:func:`source_root`    the checkout               None
:func:`workflow_dir`   the checkout               ``site-packages/isct/_workflow``
:func:`data_root`      the checkout               ``site-packages``
=====================  =========================  ===============================
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import IsctError

__all__ = [
    "data_root",
    "default_config",
    "resolve_data_path",
    "schema_path",
    "snakefile",
    "source_root",
    "workflow_dir",
]

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED_WORKFLOW = _PACKAGE / "_workflow"


def source_root() -> Path | None:
    """The source checkout isct runs from (editable install or ``PYTHONPATH``), else None."""
    root = _PACKAGE.parent
    if (root / "Snakefile").is_file() and (root / "workflow" / "rules").is_dir():
        return root
    return None


def workflow_dir() -> Path:
    """The folder holding ``Snakefile``, ``workflow/`` and ``config/``.

    Returns
    -------
    pathlib.Path
        The source checkout when isct runs from one, else the copy the wheel carries.

    Raises
    ------
    IsctError
        If neither exists (an installation built without the workflow).
    """
    root = source_root()
    if root is not None:
        return root
    if (_PACKAGED_WORKFLOW / "Snakefile").is_file():
        return _PACKAGED_WORKFLOW
    raise IsctError(
        f"this installation of isct carries no workflow: neither a source checkout at "
        f"{_PACKAGE.parent} nor {_PACKAGED_WORKFLOW / 'Snakefile'}; install isct from its "
        "wheel or sdist (pip install isct), or run it from a checkout"
    )


def snakefile() -> Path:
    """The workflow's ``Snakefile``."""
    return workflow_dir() / "Snakefile"


def schema_path() -> Path:
    """JSON Schema (YAML) of a trial config."""
    return workflow_dir() / "workflow" / "schemas" / "config.schema.yaml"


def default_config() -> Path:
    """The default trial config (``config/config.yaml``), what ``isct run`` runs without one."""
    return workflow_dir() / "config" / "config.yaml"


def data_root() -> Path:
    """The folder holding the ``cohorts``, ``models`` and ``credibility`` packages.

    The built-in files a trial config names (``cohorts/populations/…``, ``models/…/card.yaml``,
    ``credibility/plans/…``, ``credibility/comparators/…``) are package data under it.
    """
    return _PACKAGE.parent


def resolve_data_path(
    path: str | os.PathLike, *, workdir: str | os.PathLike | None = None
) -> tuple[Path, list[Path]]:
    """A file a trial config names: the first of the places it may be, and every place looked.

    Parameters
    ----------
    path : str or path
        As written in the config. An absolute path is the only place looked.
    workdir : str or path, optional
        The run directory (where ``results/`` and ``reports/`` are written); default the
        current working directory, which is the run directory inside every workflow stage.

    Returns
    -------
    found : pathlib.Path
        ``workdir / path`` if it exists, else ``data_root() / path`` if that exists, else
        ``workdir / path`` (which does not exist).
    looked : list of pathlib.Path
        The candidates in the order tried, for error messages.
    """
    path = Path(path)
    if path.is_absolute():
        return path, [path]
    base = Path.cwd() if workdir is None else Path(workdir)
    looked = [(base / path).absolute(), data_root() / path]
    looked = list(dict.fromkeys(looked))  # one place when the run directory is the data root
    found = next((p for p in looked if p.exists()), looked[0])
    return found, looked
