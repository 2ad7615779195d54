"""The report's PDF, laid out in parts at once.

WeasyPrint lays a document out on one core: the default trial's report (about 80 pages, 50
tables) took 6-7 s, the longest step of the report stage, with the machine's other cores
idle. In print every top-level ``<section>`` of the report starts a page (``report.css``),
so the pages of the whole are the pages of its sections laid out apart. :class:`PdfLayout`
cuts the HTML before sections into parts of about equal weight, lays each part out with
WeasyPrint in a process of its own (helpers started ahead,
:mod:`credibility.report._pdf_part`, that have imported WeasyPrint by the time the HTML is
ready) and joins the parts' PDFs (pypdf). What joining would lose is rebuilt:

* **links between parts**: a part gets an empty anchor for each id it links to that another
  part holds, so WeasyPrint keeps the link (a link to a named destination); the joined PDF's
  named destinations are the parts' own anchors only, on their pages in the whole.
* **the outline** (bookmarks): each part returns its headings (level, label, position); the
  joined outline nests them across parts as WeasyPrint nests a whole document's (a heading
  is the child of the nearest heading before it of a lower level).

``tests/test_report_pdf.py`` checks the joined PDF against the document laid out whole: the
same pages, outline, named destinations and link targets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._pdf_part import lay_out
from .context import ReportError

__all__ = ["PdfLayout", "split_sections", "write_pdf"]

#: Most parts a report is laid out in (each part costs a process and its fixed work).
MAX_PARTS = 4
#: A top-level section of the report: the template writes each at the start of a line.
_SECTION = re.compile(r"^<section\b", re.MULTILINE)
_DATA_URI = re.compile(r"data:[^\"')\s]*")
_ID = re.compile(r"\sid=\"([^\"]+)\"")
_HREF = re.compile(r"\shref=\"#([^\"]+)\"")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _weight(chunk: str) -> float:
    """Layout cost of a piece of HTML, in characters of text: a table cell costs about 60, a
    character of a data URI (an embedded figure) about 1/50 (fitted to the default trial's
    report, section by section: 8e-6 s a character, 5e-4 s a cell, 1e-7 s a URI character)."""
    uris = sum(len(m) for m in _DATA_URI.findall(chunk))
    cells = chunk.count("<td") + chunk.count("<th")
    return len(chunk) - uris + uris / 50 + 60 * cells


def _balanced_cuts(weights: list[float], parts: int) -> list[int]:
    """Where to cut ``weights`` (in order) into ``parts`` runs so that the heaviest run is as
    light as it can be (the parts are laid out at once: the heaviest sets the time)."""
    n = len(weights)
    prefix = [0.0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    # best[k][i]: the lightest heaviest run of the first i weights in k runs, and its last cut
    best = [[(math.inf, 0)] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = (0.0, 0)
    for k in range(1, parts + 1):
        for i in range(k, n + 1):
            best[k][i] = min(
                (max(best[k - 1][j][0], prefix[i] - prefix[j]), j) for j in range(k - 1, i)
            )
    cuts, i = [], n
    for k in range(parts, 1, -1):
        i = best[k][i][1]
        cuts.append(i)
    return cuts[::-1]


@dataclass
class _Part:
    html: str
    ids: set[str]  # the ids the part's own content holds


def split_sections(html: str, parts: int) -> list[_Part]:
    """The document cut before top-level sections into at most ``parts`` standalone
    documents of about equal weight, in order. Each has the document's head; the first
    also what precedes the first section, the last what follows the last. Each part also
    carries, out of the flow, an empty anchor for every id it links to that only another
    part holds. One part (the document as is) if it has fewer than two sections."""
    starts = [m.start() for m in _SECTION.finditer(html)]
    end = html.rfind("</section>")
    body = re.search(r"<body\b[^>]*>", html)
    if parts < 2 or len(starts) < 2 or end < starts[-1] or body is None or body.end() > starts[0]:
        return [_Part(html, set(_ID.findall(html)))]
    end += len("</section>")
    bounds = [*starts, end]
    sections = [html[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    weights = [_weight(s) for s in sections]
    cuts = _balanced_cuts(weights, min(parts, len(sections)))
    groups = [sections[a:b] for a, b in zip([0, *cuts], [*cuts, len(sections)], strict=True)]
    head, closing = html[: body.end()], "\n</body>\n</html>\n"
    texts = [
        (html[: starts[0]] if i == 0 else head)
        + "".join(group)
        + (html[end:] if i == len(groups) - 1 else closing)
        for i, group in enumerate(groups)
    ]
    ids = [set(_ID.findall(t)) for t in texts]
    out = []
    for text, own in zip(texts, ids, strict=True):
        elsewhere = sorted({h for h in _HREF.findall(text) if h not in own} & set().union(*ids))
        if elsewhere:
            # the ids as the document writes them (attribute text, escaped already)
            anchors = "".join(f'<div id="{i}"></div>' for i in elsewhere)
            holder = (
                '<div style="position: absolute; top: 0; left: 0; width: 0; height: 0; '
                f'overflow: hidden">{anchors}</div>'
            )
            at = body.end()  # every part begins with the document's head and body tag
            text = text[:at] + holder + text[at:]
        out.append(_Part(text, own))
    return out


def _outline(headings: list[tuple[int, str, int, float, float, str]]):
    """Nest headings ``(level, label, page, x, y, state)`` as WeasyPrint does: each under
    the nearest heading before it of a lower level."""
    roots: list[dict[str, Any]] = []
    open_: list[tuple[int, list]] = [(0, roots)]
    for level, label, page, x, y, state in headings:
        while len(open_) > 1 and open_[-1][0] >= level:
            open_.pop()
        node = {"label": label, "page": page, "x": x, "y": y, "state": state, "children": []}
        open_[-1][1].append(node)
        open_.append((level, node["children"]))
    return roots


def _join(paths: list[Path], laid: list[dict], parts: list[_Part], out: Path) -> None:
    """One PDF of the parts' pages, with the parts' own named destinations and the outline
    of all their headings."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ArrayObject,
        Fit,
        FloatObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    writer = PdfWriter()
    readers = [PdfReader(p) for p in paths]
    destinations: list[tuple[str, int, float, float]] = []
    headings = []
    offset = 0
    for reader, result, part in zip(readers, laid, parts, strict=True):
        for name, dest in reader.named_destinations.items():
            if name in part.ids:  # not the part's stand-ins for other parts' anchors
                page = reader.get_destination_page_number(dest) + offset
                destinations.append((name, page, float(dest.left or 0), float(dest.top or 0)))
        for i, page_headings in enumerate(result["pages"]):
            headings += [(lv, lb, offset + i, x, y, st) for lv, lb, x, y, st in page_headings]
        offset += len(reader.pages)
        writer.append(reader, import_outline=False)
    if "/Names" in writer.root_object:
        del writer.root_object["/Names"]  # what pypdf carried over; rebuilt below
    for name, page, x, y in sorted(destinations):
        writer.add_named_destination_array(
            TextStringObject(name),
            ArrayObject(
                [
                    writer.pages[page].indirect_reference,
                    NameObject("/XYZ"),
                    FloatObject(x),
                    FloatObject(y),
                    NumberObject(0),
                ]
            ),
        )

    def add(nodes, parent=None) -> None:
        for node in nodes:
            item = writer.add_outline_item(
                title=node["label"],
                page_number=node["page"],
                parent=parent,
                fit=Fit.xyz(left=node["x"], top=node["y"], zoom=0),
                is_open=node["state"] != "closed",
            )
            add(node["children"], item)

    add(_outline(headings))
    metadata = readers[0].metadata
    if metadata:
        writer.add_metadata(dict(metadata))
    lang = readers[0].trailer["/Root"].get("/Lang")
    if lang is not None:
        writer.root_object[NameObject("/Lang")] = lang
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as fh:
        writer.write(fh)
    os.replace(partial, out)


class _Helper:
    """A process (``python -P _pdf_part.py``) that imports WeasyPrint, then lays out the one
    part its job line names (JSON on stdin) and answers with a JSON line."""

    def __init__(self) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            # -P: not its own folder first on the path (report/html.py would hide html)
            [sys.executable, "-P", str(Path(__file__).with_name("_pdf_part.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def send(self, html: Path, base_url: str | None, pdf: Path) -> None:
        job = {"html": str(html), "base_url": base_url, "pdf": str(pdf)}
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died already: the answer says so

    def answer(self, what: str) -> dict[str, Any]:
        line = self.process.stdout.readline()
        code = self.process.wait()
        if code != 0 or not line.strip():
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:]
            raise ReportError(f"{what}: the process laying it out failed (status {code}):\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # no job: it exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.stderr):
            stream.close()


class PdfLayout:
    """Helper processes that lay a report's PDF out in parts (see the module docstring).

    Started ahead (``with PdfLayout() as layout: ...; layout.write(html, out)``), the
    helpers import WeasyPrint while the report is being built; each lays out one part. With
    ``parts`` (default: the usable CPUs, at most :data:`MAX_PARTS`) of 1 the document is
    laid out whole, in the calling process.
    """

    def __init__(self, parts: int | None = None) -> None:
        self.parts = max(1, min(MAX_PARTS, parts if parts is not None else _cpus()))
        self._helpers = [_Helper() for _ in range(self.parts)] if self.parts > 1 else []

    def close(self) -> None:
        for helper in self._helpers:
            helper.close()
        self._helpers = []

    def __enter__(self) -> PdfLayout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, html: str, out: str | Path, *, base_url: str | None = None) -> Path:
        """Write ``html`` as the PDF ``out``; returns ``out``. Each layout uses its helpers
        once."""
        out = Path(out)
        helpers, self._helpers = self._helpers, []
        try:
            parts = split_sections(html, len(helpers))
            if len(parts) == 1:
                self._relog(lay_out(html, base_url, str(out)))
                return out
            scratch = Path(tempfile.mkdtemp(prefix=".pdf-parts-", dir=out.parent))
            try:
                paths = [scratch / f"part{i}.pdf" for i in range(len(parts))]
                for i, (part, helper) in enumerate(zip(parts, helpers, strict=False)):
                    source = scratch / f"part{i}.html"
                    source.write_text(part.html, encoding="utf-8")
                    helper.send(source, base_url, paths[i])
                laid = [
                    helper.answer(f"{out}, part {i + 1} of {len(parts)}")
                    for i, helper in enumerate(helpers[: len(parts)])
                ]
                for result in laid:
                    self._relog(result)
                _join(paths, laid, parts, out)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return out
        finally:
            for helper in helpers:
                helper.close()

    @staticmethod
    def _relog(result: dict[str, Any]) -> None:
        for message in dict.fromkeys(result["warnings"]):  # once each, in order
            logging.getLogger("weasyprint").warning("%s", message)


def write_pdf(
    html: str, out: str | Path, *, base_url: str | None = None, parts: int | None = None
) -> Path:
    """Write ``html`` as the PDF ``out``, laid out in ``parts`` at once (:class:`PdfLayout`)."""
    with PdfLayout(parts) as layout:
        return layout.write(html, out, base_url=base_url)
