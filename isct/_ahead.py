"""Processes started ahead of their work, held back until a go line on their stdin.

``isct run`` starts Snakemake (``python -m isct._snakemake --after-go``) before it checks the
config, and the report stage starts its separate re-run (``isct verify ... --after-go``)
before it writes the manifest: each child imports meanwhile, then reads one line,
``{"go": true, ...}`` (:func:`send_go`; further keys are the child's to read). Its stdin
closed without that line (:func:`hold_back`: the parent failed first), the child runs
nothing.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import IO, Any

__all__ = ["AFTER_GO", "hold_back", "send_go", "wait_for_go"]

#: The flag of a child that waits for its go line.
AFTER_GO = "--after-go"


def wait_for_go() -> dict[str, Any] | None:
    """The go message read from stdin; None when stdin closed without one, or the line is not
    a go message."""
    line = sys.stdin.readline()
    try:
        message = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("go") is not True:
        return None
    return message


def send_go(stdin: IO[str], **fields: Any) -> None:
    """Tell the child on ``stdin`` to go (with ``fields``); a child that died already is left
    to its exit status to say why."""
    with contextlib.suppress(OSError):
        stdin.write(json.dumps({"go": True, **fields}) + "\n")
        stdin.close()


def hold_back(stdin: IO[str]) -> None:
    """Close the child's stdin without a go line: it exits having run nothing."""
    with contextlib.suppress(OSError):
        stdin.close()
