"""One base error per package: every exception a package defines derives from it, and the
command line prints each as one line (exit status 2) instead of a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from cohorts.errors import CohortError
from credibility.errors import CredibilityError
from isct.cli import main
from isct.errors import IsctError
from models.errors import ModelError

BASES = {
    "isct": IsctError,
    "cohorts": CohortError,
    "credibility": CredibilityError,
    "models": ModelError,
}


def package_exceptions(name: str) -> list[type[BaseException]]:
    package = importlib.import_module(name)
    found = []
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


@pytest.mark.parametrize("name", sorted(BASES))
def test_every_exception_of_a_package_derives_from_its_base(name):
    exceptions = package_exceptions(name)
    assert exceptions, name
    strays = [e.__qualname__ for e in exceptions if not issubclass(e, BASES[name])]
    assert not strays, f"{name}: {strays} do not derive from {BASES[name].__name__}"


def test_the_command_line_prints_a_package_error_as_one_line(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nvariables: {age: {distribution: {type: nosuch}}}\n")
    code = main(["cohort", str(spec), "--n", "5", "--seed", "1", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("isct: error:") and "Traceback" not in err
