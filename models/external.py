"""External solvers as Models: any executable, one process per patient.

:class:`ExternalSolverModel` turns a command-line solver (a finite-element code, a lumped
parameter model compiled elsewhere, a vendor tool) into a :class:`~models.base.Model`. For
every patient of a batch it

1. creates a working directory ``<runs_dir>/<arm>/patient-<id>`` (the engine passes
   ``settings["runs_dir"] = results/<trial>/runs``),
2. renders the input file(s) from Jinja2 templates with the patient's values, the device
   and the settings,
3. runs the executable with an argument *list* (never a shell string) in that directory,
   in a new session with a clean environment (``OMP_NUM_THREADS=1`` …) and a timeout,
4. parses the output file (JSON object or one-row CSV) into the declared outputs,
5. deletes the directory if the run succeeded and keeps it, with ``stdout.log``,
   ``stderr.log`` and ``run.json`` (argv, exit code, reason, duration), if it failed.

A run that exceeds ``timeout_s`` has its whole process group killed and gets status
``timeout``; a non-zero exit, a missing or unparsable output file, or a non-finite value gets
``solver_failure``. Up to ``concurrency`` runs of a batch proceed at once (threads waiting on
child processes), so a batch of slow solvers uses the worker's cores.

Example configuration (the ``model`` block of a trial config)::

    name: bernoulli
    version: "1"
    executable: "{python}"
    args: [solvers/bernoulli.py, "{input}", "{output}"]
    input_files:
      input.json: {template: '{"velocity_m_s": {{ patient.velocity_m_s }}}'}
    output_file: output.json
    inputs:
      velocity_m_s: {units: m s-1, description: peak jet velocity, bounds: [0, 10]}
    outputs:
      gradient_mmhg: {units: mmHg, description: peak transvalvular gradient}
    timeout_s: 60
    concurrency: 4
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import numpy as np

from .base import STATUS, Model, Variable
from .errors import ModelError

__all__ = [
    "CONFIG_SCHEMA",
    "ExternalSolverConfigError",
    "ExternalSolverModel",
    "RunResult",
]

_log = logging.getLogger(__name__)

#: File names written by the adapter itself into every working directory.
_RESERVED_FILES = ("stdout.log", "stderr.log", "run.json")
#: Placeholders allowed in ``args`` and ``env`` values (``{input:NAME}`` names one input file).
_PLACEHOLDERS = ("python", "base_dir", "workdir", "patient", "arm", "input", "output")
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)(?::([^{}]+))?\}")
_FILE_NAME = r"^(?!\.\.?$)[A-Za-z0-9._-]+$"
_INT_DTYPES = ("int8", "int16", "int32", "int64")
_FLOAT_DTYPES = ("float32", "float64")

_VARIABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["units", "description"],
    "properties": {
        "units": {"type": "string"},
        "description": {"type": "string"},
        "bounds": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": ["number", "null"]},
        },
        "dtype": {"enum": [*_FLOAT_DTYPES, *_INT_DTYPES]},
    },
}

#: JSON Schema (draft 2020-12) of the configuration; the trial config schema can embed it.
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "isct external solver model",
    "type": "object",
    "additionalProperties": False,
    "required": ["executable", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "default": "external"},
        "version": {"type": "string", "minLength": 1, "default": "0"},
        "executable": {"type": "string", "minLength": 1},
        "args": {"type": "array", "items": {"type": "string"}, "default": []},
        "input_files": {
            "type": "object",
            "propertyNames": {"pattern": _FILE_NAME, "not": {"enum": list(_RESERVED_FILES)}},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "template": {"type": "string"},
                    "template_file": {"type": "string", "minLength": 1},
                },
            },
            "default": {},
        },
        "output_file": {
            "type": "string",
            "pattern": _FILE_NAME,
            "not": {"enum": list(_RESERVED_FILES)},
            "default": "output.json",
        },
        "parser": {"enum": ["json", "csv"]},
        "inputs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _VARIABLE_SCHEMA,
        },
        "outputs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _VARIABLE_SCHEMA,
        },
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 600},
        "concurrency": {"type": "integer", "minimum": 1, "default": 4},
        "env": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        "inherit_env": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "default": [],
        },
        "runs_dir": {"type": ["string", "null"], "default": None},
        "keep": {"enum": ["failed", "all"], "default": "failed"},
    },
}


class ExternalSolverConfigError(ModelError):
    """The external-solver configuration is invalid (message names file, key, allowed values)."""


@dataclass(frozen=True)
class RunResult:
    """Outcome of one solver run (one patient).

    Attributes
    ----------
    status : int
        A code of :data:`models.STATUS`.
    values : dict of str to float or int
        Parsed outputs (empty unless ``status`` is ``ok``).
    workdir : pathlib.Path
        The run's working directory (deleted after a successful run unless ``keep="all"``).
    reason : str
        Why the run failed (empty when it succeeded).
    duration_s : float
        Wall-clock time of the child process, s.
    """

    status: int
    values: dict[str, float | int]
    workdir: Path
    reason: str
    duration_s: float


def _key_path(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_message(err: jsonschema.ValidationError, source: str) -> str:
    """One readable line: file, key and (where the schema knows them) the allowed values."""
    key = _key_path(err.absolute_path)
    msg = f"{source}: key {key!r}: {err.message}"
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    if err.validator == "additionalProperties" and "properties" in schema:
        msg += f"; allowed keys: {', '.join(schema['properties'])}"
    elif err.validator in ("minProperties", "maxProperties") and "properties" in schema:
        msg += f"; give exactly one of: {', '.join(schema['properties'])}"
    elif err.validator in ("pattern", "not", "propertyNames"):
        msg += (
            "; file names are plain names of letters, digits, '.', '_', '-' and not one of "
            f"{', '.join(_RESERVED_FILES)}"
        )
    return msg


def _validate(config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate against :data:`CONFIG_SCHEMA` and fill defaults; returns a deep copy."""
    if not isinstance(config, Mapping):
        raise ExternalSolverConfigError(
            f"{source}: the external solver configuration must be a mapping, "
            f"not {type(config).__name__}"
        )
    cfg = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ExternalSolverConfigError(_schema_message(errors[0], source))
    for key, sub in CONFIG_SCHEMA["properties"].items():
        if "default" in sub and key not in cfg:
            cfg[key] = copy.deepcopy(sub["default"])
    for kind in ("inputs", "outputs"):
        for var_name, var in cfg[kind].items():
            bounds = var.get("bounds")
            if bounds and None not in bounds and bounds[0] > bounds[1]:
                raise ExternalSolverConfigError(
                    f"{source}: key '{kind}.{var_name}.bounds': low {bounds[0]} exceeds "
                    f"high {bounds[1]}"
                )
    if cfg.get("parser") is None:
        suffix = Path(cfg["output_file"]).suffix.lower()
        if suffix not in (".json", ".csv"):
            raise ExternalSolverConfigError(
                f"{source}: key 'parser' is needed because output_file "
                f"{cfg['output_file']!r} ends neither in .json nor .csv; allowed: json, csv"
            )
        cfg["parser"] = suffix[1:]
    return cfg


def _variables(spec: Mapping[str, Mapping[str, Any]]) -> dict[str, Variable]:
    return {
        name: Variable(
            units=v["units"],
            description=v["description"],
            bounds=tuple(v["bounds"]) if "bounds" in v else None,
            dtype=v.get("dtype", "float64"),
        )
        for name, v in spec.items()
    }


def _resolve_executable(executable: str, source: str, base_dir: Path) -> str:
    if executable == "{python}":
        return sys.executable
    if os.sep in executable or (os.altsep and os.altsep in executable):
        path = (base_dir / Path(executable).expanduser()).resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ExternalSolverConfigError(
                f"{source}: key 'executable': {executable!r} ({path}) is not an executable "
                "file; give a path, a program name on PATH, or '{python}'"
            )
        return str(path)
    found = shutil.which(executable)
    if found is None:
        raise ExternalSolverConfigError(
            f"{source}: key 'executable': program {executable!r} not found on PATH; give a "
            "path, a program name on PATH, or '{python}'"
        )
    return str(Path(found).resolve())


def _check_placeholders(text: str, key: str, files: Sequence[str], source: str) -> None:
    for match in _PLACEHOLDER_RE.finditer(text):
        name, arg = match.group(1), match.group(2)
        if name is None:
            continue
        allowed = f"allowed: {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}, {{input:NAME}}"
        if name not in _PLACEHOLDERS or (arg is not None and name != "input"):
            raise ExternalSolverConfigError(
                f"{source}: key {key!r}: unknown placeholder {match.group(0)!r}; {allowed}"
            )
        if name == "input" and arg is None and len(files) != 1:
            raise ExternalSolverConfigError(
                f"{source}: key {key!r}: '{{input}}' needs exactly one input file, the config "
                f"has {len(files)} ({', '.join(files) or 'none'}); use {{input:NAME}}"
            )
        if name == "input" and arg is not None and arg not in files:
            raise ExternalSolverConfigError(
                f"{source}: key {key!r}: {match.group(0)!r} names no input file; allowed: "
                f"{', '.join(files) or 'none (input_files is empty)'}"
            )


def _substitute(text: str, values: Mapping[str, str], files: Mapping[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        token, name, arg = match.group(0), match.group(1), match.group(2)
        if token in ("{{", "}}"):
            return token[0]
        if name == "input":
            return files[arg] if arg is not None else next(iter(files.values()))
        return values[name]

    return _PLACEHOLDER_RE.sub(repl, text)


def _safe_name(value: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(value)).lstrip(".")
    return name or "_"


def _row_view(mapping: Mapping[str, Any], n: int) -> tuple[dict[str, Any], dict[str, list]]:
    """Split a device/settings mapping into constants and per-row lists (arrays of shape (n,))."""
    constants: dict[str, Any] = {}
    per_row: dict[str, list] = {}
    for key, value in mapping.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
            per_row[key] = value.tolist()
        elif isinstance(value, np.generic):
            constants[key] = value.item()
        elif isinstance(value, np.ndarray):
            constants[key] = value.tolist()
        else:
            constants[key] = value
    return constants, per_row


def _pick(constants: Mapping[str, Any], per_row: Mapping[str, list], i: int) -> dict[str, Any]:
    row = dict(constants)
    row.update({k: v[i] for k, v in per_row.items()})
    return row


def _number(value: Any, name: str, dtype: str) -> float | int:
    """Convert a parsed value to the output's dtype; raise ValueError with a reason."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"output {name!r} is {value!r}, not a number")
    if isinstance(value, str):
        value = value.strip()
        try:
            value = int(value) if dtype in _INT_DTYPES else float(value)
        except ValueError:
            raise ValueError(f"output {name!r} is {value!r}, not a number") from None
    if not isinstance(value, int | float):
        raise ValueError(f"output {name!r} is {value!r}, not a number")
    if not math.isfinite(value):
        raise ValueError(f"output {name!r} is {value!r}, not finite")
    if dtype in _INT_DTYPES:
        if float(value) != int(value):
            raise ValueError(f"output {name!r} is {value!r}, not an integer ({dtype})")
        info = np.iinfo(dtype)
        if not info.min <= int(value) <= info.max:
            raise ValueError(f"output {name!r} = {value!r} does not fit {dtype}")
        return int(value)
    return float(value)


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for ``proc`` to exit; False if ``timeout_s`` passed first (it is then still running).

    On Linux a pidfd is polled, which wakes the moment the child exits; ``Popen.wait(timeout)``
    instead polls with sleeps of up to 50 ms, which would add latency to every run.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        ready = poller.poll(math.ceil(timeout_s * 1000))
    finally:
        os.close(fd)
    if not ready:
        return False
    proc.wait()
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group (the solver and every child it spawned) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class ExternalSolverModel(Model):
    """A Model that runs an external executable once per patient.

    Construct from a configuration mapping with :meth:`from_config` (or keyword arguments
    with the same keys; ``models.get_model("external", **config)`` does that).

    Parameters
    ----------
    source : str
        Where the configuration came from (a file name), used in error messages.
    base_dir : path, optional
        Directory that relative paths in the configuration are resolved against (default:
        the current directory).
    **config
        The configuration (JSON Schema: :data:`CONFIG_SCHEMA`):

        executable : str
            Program name on ``PATH``, a path (relative to ``base_dir``), or ``"{python}"`` for
            the interpreter running the worker.
        args : list of str, default []
            Arguments after the executable, passed as given (the child runs in its working
            directory, so name files by absolute path or ``{base_dir}/…``). Placeholders:
            ``{python}``, ``{base_dir}``, ``{workdir}``,
            ``{patient}`` (id), ``{arm}``, ``{output}`` (absolute path of the output file),
            ``{input}`` (the only input file) or ``{input:NAME}``; ``{{``/``}}`` for braces.
        input_files : dict of str to {"template": str} or {"template_file": str}, default {}
            Input file name → Jinja2 template (inline or a file read at construction). The
            template sees ``patient`` (this patient's values of every per-patient array in the
            batch), ``patient_id``, ``arm``, ``device``, ``settings`` (per-patient arrays
            already indexed) and ``workdir``. Undefined names are errors.
        output_file : str, default "output.json"
            File the solver writes in its working directory.
        parser : {"json", "csv"}, optional
            ``json``: an object of output name → number. ``csv``: a header row of output names
            and one data row. Default: from the output file's suffix.
        inputs, outputs : dict of str to dict
            Declared variables: ``units``, ``description``, optional ``bounds`` ``[low, high]``
            (``null`` for open) and ``dtype`` (``float64`` default; ``float32``, ``int8`` …
            ``int64``). Inputs are enforced by :func:`models.run_batch`. Outputs are scalars.
        timeout_s : float, default 600
            Wall-clock limit per run, s. The run's process group is killed when it is reached.
        concurrency : int, default 4
            Runs of one batch executed at the same time.
        env : dict of str to str, default {}
            Extra environment variables (placeholders allowed); they override the defaults.
        inherit_env : list of str, default []
            Names of variables copied from the worker's environment (e.g. a license server).
        runs_dir : str, optional
            Root of the working directories when ``settings["runs_dir"]`` is not given.
        keep : {"failed", "all"}, default "failed"
            Keep the working directories of failed runs only, or of every run.
        name, version : str
            Registry name and version recorded in stores (defaults ``"external"``, ``"0"``).

    Raises
    ------
    ExternalSolverConfigError
        If a key is unknown or invalid, the executable or a template file is missing, or a
        template or placeholder does not parse; the message names ``source`` and the key.

    Notes
    -----
    The child's environment is built from scratch, so runs do not depend on the worker's
    shell: ``PATH`` and ``HOME`` from the worker, ``LANG=LC_ALL=C.UTF-8``, ``TMPDIR`` set to
    the working directory, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``
    and ``NUMEXPR_NUM_THREADS`` set to 1, ``ISCT_PATIENT``, ``ISCT_ARM``, ``ISCT_WORKDIR``;
    then ``inherit_env`` and ``env``. Each run starts a new session (``setsid``) so that a
    timeout kills the solver and every child it spawned (POSIX only). A child that starts its
    own session escapes this.

    Working directories are ``<runs_dir>/<arm>/patient-<id>`` (``-row<i>`` appended when a
    batch holds the same patient twice, as UQ batches do); a directory left by an earlier
    attempt is replaced. The engine must therefore not run two batches with the same patient
    ids, arm and ``runs_dir`` at the same time. Patient ids come from ``patients["patient"]``
    when the batch carries it, else the row index.

    Examples
    --------
    >>> import numpy as np, models
    >>> m = ExternalSolverModel.from_config({
    ...     "executable": "cp", "args": ["{input}", "{output}"],
    ...     "input_files": {"in.json": {"template": '{"y": {{ 2 * patient.x }}}'}},
    ...     "inputs": {"x": {"units": "1", "description": "x"}},
    ...     "outputs": {"y": {"units": "1", "description": "2 x"}},
    ... })
    >>> import tempfile
    >>> out = models.run_batch(m, {"x": np.array([1.0, 2.5])}, {},
    ...                        {"runs_dir": tempfile.mkdtemp()})
    >>> out["y"].tolist(), out["status"].tolist()
    ([2.0, 5.0], [0, 0])
    """

    name = "external"
    version = "0"

    def __init__(
        self,
        *,
        source: str = "<keyword arguments>",
        base_dir: str | os.PathLike[str] | None = None,
        **config: Any,
    ) -> None:
        cfg = _validate(config, source)
        base = Path.cwd() if base_dir is None else Path(base_dir).resolve()
        self.config: dict[str, Any] = cfg
        self.source = source
        self.base_dir = base
        self.name = cfg["name"]
        self.version = cfg["version"]
        self.inputs = _variables(cfg["inputs"])
        self.outputs = _variables(cfg["outputs"])
        self.executable = _resolve_executable(cfg["executable"], source, base)
        self.args: list[str] = list(cfg["args"])
        self.output_file: str = cfg["output_file"]
        self.parser: str = cfg["parser"]
        self.timeout_s = float(cfg["timeout_s"])
        self.concurrency = int(cfg["concurrency"])
        self.env: dict[str, str] = dict(cfg["env"])
        self.inherit_env: list[str] = list(cfg["inherit_env"])
        self.runs_dir = (base / cfg["runs_dir"]).resolve() if cfg["runs_dir"] else None
        self.keep: str = cfg["keep"]

        self.templates: dict[str, str] = {}
        for file_name, spec in cfg["input_files"].items():
            if "template" in spec:
                self.templates[file_name] = spec["template"]
                continue
            path = base / Path(spec["template_file"]).expanduser()
            try:
                self.templates[file_name] = path.read_text(encoding="utf-8")
            except OSError as err:
                raise ExternalSolverConfigError(
                    f"{source}: key 'input_files.{file_name}.template_file': cannot read "
                    f"{str(path)!r}: {err.strerror}"
                ) from err
        self._compiled: dict[str, jinja2.Template] = {}
        self._compile_templates()
        files = list(self.templates)
        for i, arg in enumerate(self.args):
            _check_placeholders(arg, f"args.{i}", files, source)
        for key, value in self.env.items():
            _check_placeholders(value, f"env.{key}", files, source)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        source: str = "<config>",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> ExternalSolverModel:
        """Build the model from a configuration mapping (e.g. a block of the trial config).

        Parameters
        ----------
        config : mapping
            Keys as documented in the class docstring; schema :data:`CONFIG_SCHEMA`.
        source : str
            File the mapping was read from, named in error messages.
        base_dir : path, optional
            Directory that relative ``executable``, ``template_file`` and ``runs_dir`` paths
            are resolved against (default: the current directory, i.e. the repository root
            where the trial runs).

        Raises
        ------
        ExternalSolverConfigError
            If the configuration is invalid.
        """
        if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
            raise ExternalSolverConfigError(
                f"{source}: the external solver configuration must be a mapping with string "
                f"keys; allowed keys: {', '.join(CONFIG_SCHEMA['properties'])}"
            )
        return cls(source=source, base_dir=base_dir, **config)

    # -- pickling: compiled Jinja templates are rebuilt on the worker --------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_compiled"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._compile_templates()

    def _compile_templates(self) -> None:
        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
        )
        for file_name, text in self.templates.items():
            try:
                self._compiled[file_name] = env.from_string(text)
            except jinja2.TemplateSyntaxError as err:
                raise ExternalSolverConfigError(
                    f"{self.source}: key 'input_files.{file_name}': template syntax error at "
                    f"line {err.lineno}: {err.message}"
                ) from err

    def fingerprint(self) -> str:
        """SHA-256 of the configuration, the templates and the executable file.

        Changes whenever the solver or how it is called changes; for the trial manifest.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.config, sort_keys=True, default=str).encode())
        digest.update(json.dumps(self.templates, sort_keys=True).encode())
        with open(self.executable, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    # -- the Model interface ------------------------------------------------------------------
    def simulate(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, np.ndarray]:
        """Run the solver for every patient of the batch, ``concurrency`` at a time.

        Parameters
        ----------
        patients : mapping of str to ndarray
            Per-patient arrays of shape ``(n,)``: the declared inputs and anything else the
            templates use; ``patient`` (int64 ids) names the working directories.
        device : mapping
            Device parameters; arrays of shape ``(n,)`` are per patient.
        settings : mapping
            ``runs_dir`` (root of the working directories; falls back to the config key) and
            ``arm`` (directory level and ``{arm}``); the rest is passed to the templates.

        Returns
        -------
        dict of str to ndarray
            Every declared output (fill value where a run failed) and ``status`` (int8).

        Raises
        ------
        ExternalSolverConfigError
            If no ``runs_dir`` is known or a template uses an undefined name (a configuration
            error, not a patient's failure).
        """
        results = self.run(patients, device, settings)
        n = len(results)
        out: dict[str, np.ndarray] = {}
        for key, var in self.outputs.items():
            column = [r.values.get(key, var.fill_value) for r in results]
            out[key] = np.asarray(column, dtype=var.dtype).reshape(n)
        out["status"] = np.fromiter((r.status for r in results), dtype=np.int8, count=n)
        return out

    def run(
        self,
        patients: Mapping[str, np.ndarray],
        device: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> list[RunResult]:
        """Like :meth:`simulate` but return one :class:`RunResult` per patient (diagnostics)."""
        columns = {k: np.asarray(v) for k, v in patients.items() if np.ndim(v) >= 1}
        lengths = {v.shape[0] for v in columns.values()}
        if not lengths:
            raise ValueError(f"model {self.name!r}: the batch holds no per-patient arrays")
        if len(lengths) != 1:
            raise ValueError(f"model {self.name!r}: patient arrays differ in length {lengths}")
        (n,) = lengths
        if n == 0:
            return []
        root = settings.get("runs_dir") or self.runs_dir
        if not root:
            raise ExternalSolverConfigError(
                f"{self.source}: model {self.name!r} has no working-directory root; give "
                "settings['runs_dir'] (the engine passes results/<trial>/runs) or the config "
                "key 'runs_dir'"
            )
        arm = str(settings.get("arm", "default"))
        arm_dir = Path(root).resolve() / _safe_name(arm)
        ids = (
            np.asarray(columns["patient"], dtype=np.int64)
            if "patient" in columns
            else np.arange(n, dtype=np.int64)
        )
        unique_ids, counts = np.unique(ids, return_counts=True)
        duplicated = np.isin(ids, unique_ids[counts > 1])
        dirs = [
            arm_dir / (f"patient-{pid:06d}-row{i}" if dup else f"patient-{pid:06d}")
            for i, (pid, dup) in enumerate(zip(ids.tolist(), duplicated.tolist(), strict=True))
        ]
        rows = {k: v.tolist() for k, v in columns.items()}
        dev_const, dev_rows = _row_view(device, n)
        set_const, set_rows = _row_view({k: v for k, v in settings.items() if k != "runs_dir"}, n)
        base_env = self._base_env()

        def one(i: int) -> RunResult:
            context = {
                "patient": {k: v[i] for k, v in rows.items()},
                "patient_id": int(ids[i]),
                "arm": arm,
                "device": _pick(dev_const, dev_rows, i),
                "settings": _pick(set_const, set_rows, i),
                "workdir": str(dirs[i]),
            }
            return self._run_one(dirs[i], context, base_env)

        workers = max(1, min(self.concurrency, n))
        if workers == 1:
            results = [one(i) for i in range(n)]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="isct-ext") as pool:
                results = list(pool.map(one, range(n)))
        failed = [r for r in results if r.status != STATUS["ok"]]
        if failed:
            timeouts = sum(r.status == STATUS["timeout"] for r in failed)
            _log.warning(
                "external solver %r, arm %r: %d of %d runs failed (%d timeout); logs kept in %s",
                self.name,
                arm,
                len(failed),
                n,
                timeouts,
                arm_dir,
            )
        return results

    # -- one run ------------------------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1",
        }
        env.update({k: os.environ[k] for k in self.inherit_env if k in os.environ})
        return env

    def _run_one(
        self, workdir: Path, context: dict[str, Any], base_env: Mapping[str, str]
    ) -> RunResult:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        files = {name: str(workdir / name) for name in self.templates}
        values = {
            "python": sys.executable,
            "base_dir": str(self.base_dir),
            "workdir": str(workdir),
            "patient": str(context["patient_id"]),
            "arm": context["arm"],
            "output": str(workdir / self.output_file),
        }
        argv = [self.executable, *(_substitute(a, values, files) for a in self.args)]
        env = dict(base_env)
        env.update(
            TMPDIR=str(workdir),
            ISCT_PATIENT=values["patient"],
            ISCT_ARM=context["arm"],
            ISCT_WORKDIR=str(workdir),
        )
        env.update({k: _substitute(v, values, files) for k, v in self.env.items()})

        status, reason, returncode, duration = STATUS["ok"], "", None, 0.0
        parsed: dict[str, float | int] = {}
        try:
            for name, template in self._compiled.items():
                (workdir / name).write_text(template.render(context), encoding="utf-8")
        except jinja2.UndefinedError as err:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ExternalSolverConfigError(
                f"{self.source}: key 'input_files': a template uses an undefined name "
                f"({err.message}); available: patient.{{{', '.join(context['patient'])}}}, "
                f"device.{{{', '.join(context['device'])}}}, "
                f"settings.{{{', '.join(context['settings'])}}}, patient_id, arm, workdir"
            ) from err
        except Exception as err:  # a patient's values broke the template (e.g. 1/0)
            status, reason = STATUS["solver_failure"], f"rendering the input failed: {err!r}"

        if status == STATUS["ok"]:
            returncode, duration, timed_out, reason = self._execute(argv, workdir, env)
            if timed_out:
                status = STATUS["timeout"]
            elif reason:
                status = STATUS["solver_failure"]
            else:
                try:
                    parsed = self._parse(workdir / self.output_file)
                except ValueError as err:
                    status, reason = STATUS["solver_failure"], str(err)

        if status != STATUS["ok"] or self.keep == "all":
            record = {
                "patient": context["patient_id"],
                "arm": context["arm"],
                "argv": argv,
                "returncode": returncode,
                "status": next(k for k, v in STATUS.items() if v == status),
                "reason": reason,
                "duration_s": duration,
                "timeout_s": self.timeout_s,
            }
            (workdir / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return RunResult(
            status=status,
            values=parsed if status == STATUS["ok"] else {},
            workdir=workdir,
            reason=reason,
            duration_s=duration,
        )

    def _execute(
        self, argv: list[str], workdir: Path, env: Mapping[str, str]
    ) -> tuple[int | None, float, bool, str]:
        """Run argv; return (exit code, duration s, timed out, failure reason or "")."""
        start = time.perf_counter()
        with (
            open(workdir / "stdout.log", "wb") as out,
            open(workdir / "stderr.log", "wb") as err,
        ):
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                return None, time.perf_counter() - start, False, f"cannot start: {exc}"
            try:
                finished = _wait(proc, self.timeout_s)
            except BaseException:  # interrupted (Ctrl-C, task cancelled): leave no orphans
                _kill_group(proc)
                raise
            if not finished:
                _kill_group(proc)
                return (
                    proc.returncode,
                    time.perf_counter() - start,
                    True,
                    f"timed out after {self.timeout_s:g} s; process group killed",
                )
        duration = time.perf_counter() - start
        code = proc.returncode
        if code != 0:
            what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return code, duration, False, f"solver {what}"
        return code, duration, False, ""

    def _parse(self, path: Path) -> dict[str, float | int]:
        """Read the output file; raise ValueError naming what is wrong."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"output file {path.name!r} was not written") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read output file {path.name!r}: {err}") from None
        if self.parser == "json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"output file {path.name!r} is not JSON: {err}") from None
            if not isinstance(data, dict):
                raise ValueError(
                    f"output file {path.name!r} holds {type(data).__name__}, not an object"
                )
        else:
            table = list(csv.DictReader(text.splitlines()))
            if len(table) != 1:
                raise ValueError(
                    f"output file {path.name!r} has {len(table)} data rows; expected a header "
                    "row and one data row"
                )
            data = table[0]
        missing = [k for k in self.outputs if k not in data]
        if missing:
            raise ValueError(
                f"output file {path.name!r} lacks {missing}; it has {sorted(map(str, data))}"
            )
        return {k: _number(data[k], k, var.dtype) for k, var in self.outputs.items()}
