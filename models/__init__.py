"""Device models: the Model protocol, the registry and built-in models."""

from __future__ import annotations

__all__: list[str] = []
