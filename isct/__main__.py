"""``python -m isct``: the ``isct`` command line, where no console script is on PATH."""

from .cli import run

# Dask's spawned worker processes re-import the main module: run only when executed.
if __name__ == "__main__":
    run()
