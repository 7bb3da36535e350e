"""The usage domain's clock jobs."""

from __future__ import annotations
