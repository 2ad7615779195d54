"""Snakemake's command line as ``isct run`` starts it: ``python -m isct._snakemake ARGS``.

It is ``python -m snakemake ARGS``, but the process ends as soon as Snakemake returns
(:func:`isct._exit.exit_now`), with Snakemake's status.
"""

from __future__ import annotations

from ._exit import exit_now, status_of


def main() -> None:
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main()
        status = 0
    except SystemExit as exc:
        status = status_of(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    exit_now(status)


if __name__ == "__main__":
    main()
