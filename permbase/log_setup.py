"""Logging configuration, applied once from `create_app` or a command's `main`."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_permgraph", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
        handler._permgraph = True  # type: ignore[attr-defined]  # a marker: a second call adds no second handler
        root.addHandler(handler)
    root.setLevel(level.upper())


__all__ = ["configure_logging"]
