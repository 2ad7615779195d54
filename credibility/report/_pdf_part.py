"""One part of a report's PDF laid out by WeasyPrint (:mod:`credibility.report.pdf`).

Run as a script (``python -P _pdf_part.py``) by each helper that module starts (and
imported by it to lay a document out whole, in one part): the script imports only the standard
library and WeasyPrint (not the ``credibility`` package, about 1.5 s of imports), then reads
one job line (JSON on stdin: ``html``, ``base_url``, ``pdf``), lays the part out and answers
with a JSON line (its pages' headings, WeasyPrint's warnings).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

#: WeasyPrint's PDF units per CSS pixel (``zoom=1``).
SCALE = 0.75


def lay_out(html: str, base_url: str | None, path: str) -> dict[str, Any]:
    """Lay one part out and write its PDF; its pages' heights and headings, and what
    WeasyPrint warned of. Runs in a helper process (or the calling one)."""
    import weasyprint

    warnings: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    keep = _Keep(logging.WARNING)
    wlog = logging.getLogger("weasyprint")
    wlog.addHandler(keep)
    try:
        document = weasyprint.HTML(string=html, base_url=base_url).render()
        document.write_pdf(path)
    finally:
        wlog.removeHandler(keep)
    pages = [
        [
            (level, label, SCALE * x, SCALE * (page.height - y), state)
            for level, label, (x, y), state in page.bookmarks
        ]
        for page in document.pages
    ]
    return {"pages": pages, "warnings": warnings}


def _serve() -> int:
    """A helper's life: import WeasyPrint, read one job line, lay its part out, answer."""
    import weasyprint  # noqa: F401  (imported before the job arrives)

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # closed without a job
    job = json.loads(line)
    html = Path(job["html"]).read_text(encoding="utf-8")
    result = lay_out(html, job["base_url"], job["pdf"])
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
