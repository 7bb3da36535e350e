"""The postmortems domain's clock jobs: the weekly digest."""

from __future__ import annotations
