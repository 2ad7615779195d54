"""Credibility evidence: verification, validation, UQ, sensitivity, V&V 40 plans and reports."""

from __future__ import annotations

__all__: list[str] = []
