"""The trial: a validated, read-only trial config and what the stages derive from it.

:func:`load_config` reads a trial config file into a :class:`Trial`; every stage takes one. The config
inside is frozen (mappings are read-only views, lists are tuples), so no stage can change
what a later stage sees; :meth:`Trial.with_calibration` and :meth:`Trial.replace` return new
trials. The model, the arms (design sweep expanded) and the uncertainty problem are built
once per trial, here, rather than by every stage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .config import model_of, resolve_path, uncertainty_problem, validate_config
from .errors import ConfigError
from .frozen import freeze, thaw

__all__ = ["Trial", "load_config"]


@dataclass(frozen=True, eq=False)
class Trial(Mapping[str, Any]):
    """A validated trial config (defaults filled), read-only.

    Reads as the config mapping (``trial["cohort"]["n"]``) and offers what stages need.

    Attributes
    ----------
    config : Mapping
        The frozen config.
    source : str
        Where it came from (a file name, or ``<snakemake config>``), for messages.
    path : pathlib.Path or None
        The config file, when there is one.
    workdir : pathlib.Path or None
        The run directory relative paths of the config are looked up in (None: the current
        working directory, as in every workflow stage).
    calibration : Mapping or None
        The calibrate stage's result applied by :meth:`with_calibration`, if any.
    """

    config: Mapping[str, Any]
    source: str = "<config>"
    path: Path | None = None
    workdir: Path | None = None
    calibration: Mapping[str, Any] | None = field(default=None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(
        cls,
        config: Mapping[str, Any],
        *,
        source: str = "<config>",
        path: Path | None = None,
        workdir: str | os.PathLike | None = None,
    ) -> Trial:
        """Validate a plain config (a copy; defaults filled) and freeze it.

        Raises
        ------
        isct.errors.ConfigError
            Listing every problem of the config.
        """
        workdir = None if workdir is None else Path(workdir)
        checked = validate_config(thaw(config), source=source, workdir=workdir)
        return cls(freeze(checked), source=source, path=path, workdir=workdir)

    def replace(self, changes: Mapping[str, Any]) -> Trial:
        """A new, re-validated trial with dotted keys replaced (``{"cohort.n": 50}``)."""
        config = self.to_dict()
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            node = config
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = thaw(value)
        trial = Trial.from_dict(config, source=self.source, path=self.path, workdir=self.workdir)
        return trial if self.calibration is None else trial._calibrated(self.calibration)

    def with_calibration(self, calibration: str | os.PathLike | None) -> Trial:
        """This trial with the calibrate stage's ``calibration.json`` applied.

        The calibrated values (posterior means) replace the model settings and, when
        ``calibration.propagate`` is on, the calibrated parameters join
        ``uncertainty.parameters`` with their posterior (truncated normal, mean and SD,
        within the prior range). A disabled calibration leaves the trial as it is.
        """
        if calibration is None:
            return self
        data = json.loads(Path(calibration).read_text())
        if not data.get("enabled"):
            return self
        return self._calibrated(data)

    def _calibrated(self, data: Mapping[str, Any]) -> Trial:
        config = self.to_dict()
        config["model"]["settings"] = {**config["model"]["settings"], **data["settings"]}
        if config["calibration"]["propagate"]:
            posterior = {
                name: {
                    "dist": "truncnormal",
                    "mean": p["estimate"],
                    "sd": max(p["sd"], 1e-9),
                    "low": p["prior_low"],
                    "high": p["prior_high"],
                }
                for name, p in data["parameters"].items()
            }
            config["uncertainty"]["parameters"] = {
                **config["uncertainty"]["parameters"],
                **posterior,
            }
        return Trial(
            freeze(config),
            source=self.source,
            path=self.path,
            workdir=self.workdir,
            calibration=freeze(data),
        )

    # ------------------------------------------------------------------ mapping view
    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.config)

    def __len__(self) -> int:
        return len(self.config)

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable copy of the config."""
        return thaw(self.config)

    # ------------------------------------------------------------------ derived
    @property
    def name(self) -> str:
        return self.config["trial"]["name"]

    @property
    def seed(self) -> int:
        return int(self.config["trial"]["seed"])

    @property
    def endpoints(self) -> list[str]:
        return list(self.config["endpoints"])

    @property
    def settings(self) -> dict[str, Any]:
        """The model settings (a fresh plain copy)."""
        return thaw(self.config["model"]["settings"])

    @cached_property
    def model(self) -> Any:
        """The model instance the config names, built with its ``model.options``."""
        return model_of(self.config, source=self.source, workdir=self.workdir)

    @cached_property
    def _arms(self) -> tuple:
        from .engine import expand_arms

        return freeze(expand_arms(thaw(self.config["arms"]), thaw(self.config.get("design_sweep"))))

    @property
    def arms(self) -> list[dict[str, Any]]:
        """The arms, a design sweep expanded (fresh plain copies)."""
        return thaw(self._arms)

    @property
    def arm_names(self) -> list[str]:
        return [a["name"] for a in self._arms]

    @cached_property
    def problem(self) -> Any:
        """The :class:`credibility.uq.Problem` of ``uncertainty.parameters``."""
        return uncertainty_problem(self.config, source=self.source)

    def resolve(self, path: str | os.PathLike) -> Path:
        """A file the config names, as a path: in the run directory, else among isct's
        built-in files (see :func:`isct.config.resolve_path`)."""
        return resolve_path(path, workdir=self.workdir)

    def __repr__(self) -> str:
        return f"Trial({self.name!r}, source={self.source!r})"


def load_config(path: str | os.PathLike, *, workdir: str | os.PathLike | None = None) -> Trial:
    """Read and validate a trial config file into a :class:`Trial`.

    Parameters
    ----------
    path : str or path
        The trial config (YAML).
    workdir : str or path, optional
        The run directory relative paths are looked up in; default the current working
        directory.

    Raises
    ------
    isct.errors.ConfigError
        For an unreadable file, invalid YAML, or every problem of the config at once
        (:func:`isct.config.validate_config`).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read trial config ({err.strerror})") from err
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return Trial.from_dict(config, source=str(path), path=path, workdir=workdir)
