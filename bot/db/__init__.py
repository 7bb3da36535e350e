"""Database plumbing shared by every domain: declarative base, engine, sessions, migrations."""

from bot.db.base import Base, UTCDateTime, utcnow
from bot.db.session import Database, make_engine

__all__ = ["Base", "Database", "UTCDateTime", "make_engine", "utcnow"]
