"""Imports every domain's models so `Base.metadata` is complete for migrations and test schemas."""

from bot.db.base import Base
from bot.registry import models as registry_models

__all__ = ["Base", "registry_models"]
