"""The report's PDF laid out in parts at once (credibility.report.pdf) is the PDF of the
document laid out whole: same pages, outline, named destinations and links."""

from __future__ import annotations

import re

import pytest
from pypdf import PdfReader

from credibility.report.context import ReportError
from credibility.report.pdf import PdfLayout, _balanced_cuts, split_sections, write_pdf
from credibility.report.render import TEMPLATES

CSS = (TEMPLATES / "report.css").read_text(encoding="utf-8")


def _document(n_sections: int = 6) -> str:
    """A report-shaped document: header, a contents list linking to every section, sections
    (h2, h3, a table, links back and forward) of different lengths, and one data URI."""
    nav = "".join(f'<li><a href="#s{i}">Section {i}</a></li>' for i in range(n_sections))
    sections = []
    for i in range(n_sections):
        rows = "".join(
            f"<tr><td>row {r} of section {i}</td><td>{r * i}</td></tr>" for r in range(6 + 9 * i)
        )
        back = f'<p>See <a href="#s{(i + 3) % n_sections}">a later or earlier section</a>.</p>'
        sections.append(
            f'<section id="s{i}">\n<h2>{i}. Section {i}</h2>\n<h3 id="s{i}-t">Table {i}</h3>\n'
            f'<table class="data"><tr><th>a</th><th>b</th></tr>{rows}</table>\n{back}\n'
            "</section>\n"
        )
    dot = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
        "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    sections[1] = sections[1].replace("</h2>", f'</h2>\n<img src="{dot}" alt="dot">', 1)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>Test report</title><style>{CSS}</style></head>\n<body>\n"
        f"<header><h1>Test report</h1></header>\n<nav><ol>{nav}</ol></nav>\n"
        + "".join(sections)
        + "\n</body>\n</html>"
    )


def _summary(path):
    """Pages, named destinations, outline and links of a PDF, comparable across PDFs."""
    reader = PdfReader(path)

    def where(dest):
        return reader.get_destination_page_number(dest), round(float(dest.top or 0), 2)

    dests = {name: where(d) for name, d in reader.named_destinations.items()}

    def walk(items, depth=0):
        for item in items:
            if isinstance(item, list):
                yield from walk(item, depth + 1)
            else:
                yield depth, item.title, *where(item)

    links = []
    for number, page in enumerate(reader.pages):
        for annot in page.get("/Annots") or []:
            annot = annot.get_object()
            if annot.get("/Subtype") == "/Link":
                rect = [round(float(v), 1) for v in annot["/Rect"]]
                links.append((number, str(annot.get("/Dest")), rect))
    return {
        "pages": len(reader.pages),
        "dests": dests,
        "outline": list(walk(reader.outline)),
        "links": links,
        "title": reader.metadata.get("/Title"),
        "lang": reader.trailer["/Root"].get("/Lang"),
    }


def test_split_keeps_every_section_once_in_order_with_stand_ins_for_other_parts_anchors():
    html = _document()
    parts = split_sections(html, 3)
    assert len(parts) == 3
    order = [f'id="s{i}"' for i in range(6)]
    seen = [s for p in parts for s in order if f"<section {s}" in p.html]
    assert seen == order
    assert "<nav>" in parts[0].html and all("<nav>" not in p.html for p in parts[1:])
    assert all(p.html.count("<style>") == 1 and p.html.rstrip().endswith("</html>") for p in parts)
    for part in parts:
        held = {i for i in range(6) if f'<section id="s{i}"' in part.html}
        holder = re.search(r'overflow: hidden">(.*?)</div></div>', part.html)
        stand_ins = set(re.findall(r'id="([^"]+)"', holder.group(1))) if holder else set()
        linked = {f"s{(i + 3) % 6}" for i in held} | (
            {f"s{i}" for i in range(6)} if "<nav>" in part.html else set()
        )
        assert stand_ins == linked - {f"s{i}" for i in held}
    # fewer than two sections, or one part asked for: the document as it is
    assert [p.html for p in split_sections(html, 1)] == [html]


def test_parts_are_cut_so_that_the_heaviest_is_as_light_as_it_can_be():
    assert _balanced_cuts([1, 1, 1, 1], 2) == [2]
    assert _balanced_cuts([5, 1, 1, 1, 1, 1], 2) == [1]  # 5 | 5, not 6 | 4
    assert _balanced_cuts([1, 2, 3, 4, 5], 3) == [3, 4]  # 6 | 4 | 5
    assert _balanced_cuts([9], 1) == []


def test_pdf_laid_out_in_parts_is_the_pdf_laid_out_whole(tmp_path):
    html = _document()
    whole = write_pdf(html, tmp_path / "whole.pdf", parts=1)
    with PdfLayout(3) as layout:
        parted = layout.write(html, tmp_path / "parts.pdf")
    a, b = _summary(parted), _summary(whole)
    assert a == b
    # the comparison sees what matters: links across parts, a nested outline, many pages
    assert a["pages"] >= 6
    assert {d for _, d, _ in a["links"]} == {f"s{i}" for i in range(6)}
    assert any(depth == 2 for depth, *_ in a["outline"])  # h3 under h2 under h1
    assert a["title"] == "Test report" and a["lang"] == "en"
    assert not list(tmp_path.glob(".pdf-parts-*"))  # the parts' scratch is gone


def test_each_section_starts_a_page_in_print(tmp_path):
    """What makes the parts' pages the whole's: without the report CSS's section break the
    short sections share pages (and a part would start a page the whole does not)."""
    html = _document()
    with_break = _summary(write_pdf(html, tmp_path / "a.pdf", parts=1))
    starts = sorted(
        page
        for name, (page, _) in with_break["dests"].items()
        if name in {f"s{i}" for i in range(6)}
    )
    assert starts == sorted(set(starts)) and len(starts) == 6
    no_break = html.replace("section + section { break-before: page; }", "")
    assert no_break != html
    assert _summary(write_pdf(no_break, tmp_path / "b.pdf", parts=1))["pages"] < with_break["pages"]


def test_a_helper_that_dies_fails_the_pdf_with_its_part_named(tmp_path):
    html = _document()
    out = tmp_path / "report.pdf"
    with PdfLayout(2) as layout:
        layout._helpers[1].process.kill()
        with pytest.raises(ReportError, match=r"report\.pdf, part 2 of 2.*failed"):
            layout.write(html, out)
    assert not out.exists() and not list(tmp_path.iterdir())
