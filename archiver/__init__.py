"""archiver: keep the slides and pictures of event posts alive."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
