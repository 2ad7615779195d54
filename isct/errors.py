"""Exceptions raised by isct for bad user input and unusable stores."""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ClusterProfileError",
    "ConfigError",
    "IsctError",
    "LockInstallError",
    "SignatureError",
    "SimulationIncompleteError",
    "StoreMismatchError",
]


class IsctError(Exception):
    """Base class of isct errors that the command line prints without a traceback."""


class ConfigError(IsctError, ValueError):
    """A trial config (or a file it names) is invalid; the message names file, key and allowed values."""


class ClusterProfileError(ConfigError):
    """A cluster profile is invalid, or the batch system refused or never started its jobs;
    the message names the profile and its key, and the jobs submitted were cancelled."""


class StoreMismatchError(IsctError):
    """An existing results store was started with a different cohort, model or arms."""


class SimulationIncompleteError(IsctError):
    """Some batches failed even after retries; finished regions are kept and a rerun resumes."""


class BundleError(IsctError):
    """A submission bundle is unusable: a file differs from its index, a patient's leaf from
    the hash tree, the model version from the stores; names the file, patient or key."""


class SignatureError(BundleError):
    """A bundle's signature is missing, unreadable, or does not verify with the key."""


class LockInstallError(BundleError):
    """The bundle's environment lock cannot be installed into a fresh virtual environment."""
