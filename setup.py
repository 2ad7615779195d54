"""Build hook: the wheel carries the workflow as ``isct/_workflow``.

The repository keeps ``Snakefile``, ``workflow/`` (rules, schemas, report captions)
and ``config/`` (the built-in trials and cluster profiles) at its top level, where Snakemake
users expect them. A wheel only holds packages, so ``build_py`` copies them into the built
``isct`` package; ``isct.resources.workflow_dir()`` finds the checkout when isct runs from
source or an editable install, and this copy otherwise. The rules' ``conda:`` directive names
``environment.yml`` (Snakemake hashes it into every job's metadata), so the copy has one too,
installing this isct release instead of the checkout. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Top-level files and folders copied into the wheel's ``isct/_workflow/``.
WORKFLOW = ("Snakefile", "workflow", "config")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")


class BuildPyWithWorkflow(build_py):
    """``build_py`` that also copies the workflow into ``<build_lib>/isct/_workflow``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs the checkout's own workflow
        target = Path(self.build_lib) / "isct" / "_workflow"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in WORKFLOW:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORE)
            else:
                shutil.copy2(source, target / name)
        env = (ROOT / "environment.yml").read_text()
        editable = "- -e .[test,dev,slurm]"
        if editable not in env:
            raise RuntimeError(f"environment.yml: no line '{editable}' to replace")
        version = self.distribution.get_version()
        (target / "environment.yml").write_text(env.replace(editable, f"- isct=={version}"))


setup(cmdclass={"build_py": BuildPyWithWorkflow})
