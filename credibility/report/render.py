"""Writing the report: the Jinja template rendered to one self-contained HTML (and a PDF)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from credibility import figures as _fig

from .context import ReportError
from .pdf import PdfLayout, write_pdf

__all__ = ["TEMPLATES", "render_report"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def render_report(
    out_html: str | Path,
    *,
    context: Mapping[str, Any],
    pdf: bool = False,
    layout: PdfLayout | None = None,
) -> Path:
    """Write the credibility report as one self-contained HTML file (and optionally a PDF).

    CSS is inlined and every figure is a base64 PNG ``data:`` URI, so the file can be mailed
    or archived alone. The PDF (``out_html`` with suffix ``.pdf``) is produced by WeasyPrint,
    laid out in parts at once (:mod:`credibility.report.pdf`).

    Parameters
    ----------
    out_html : str or Path
        Output path; parent directories are created.
    context : mapping
        Output of :func:`credibility.report.build_context`.
    pdf : bool, default False
        Also write a PDF next to the HTML.
    layout : PdfLayout, optional
        Helpers started ahead to lay the PDF out (default: started here, one per usable CPU).

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    ReportError
        If the template is missing or WeasyPrint is unavailable when ``pdf=True``.
    """
    out = Path(out_html)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    try:
        template = env.get_template("report.html.j2")
        css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    except (jinja2.TemplateNotFound, OSError) as exc:
        raise ReportError(f"report template missing in {TEMPLATES}: {exc}") from exc
    html = template.render(ctx=context, css=css, status_colours=_fig.STATUS_COLOURS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if pdf:
        # found, not imported: the helpers that lay the PDF out import it, not this process
        if importlib.util.find_spec("weasyprint") is None:  # pragma: no cover - a dependency
            raise ReportError("pdf=True needs the 'weasyprint' package")
        if layout is None:
            write_pdf(html, out.with_suffix(".pdf"), base_url=str(out.parent))
        else:
            layout.write(html, out.with_suffix(".pdf"), base_url=str(out.parent))
    return out
