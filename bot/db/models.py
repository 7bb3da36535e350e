"""Imports every domain's models so `Base.metadata` is complete for migrations and test schemas."""

from bot.alerts import models as alert_models
from bot.db.base import Base
from bot.incidents import models as incident_models
from bot.notifications import models as notification_models
from bot.registry import models as registry_models
from bot.reminders import models as reminder_models
from bot.runbooks import models as runbook_models
from bot.scheduling import models as scheduling_models
from bot.slack import installations as slack_installations
from bot.slack import models as slack_models
from bot.usage import models as usage_models

__all__ = [
    "Base",
    "alert_models",
    "incident_models",
    "notification_models",
    "registry_models",
    "reminder_models",
    "runbook_models",
    "scheduling_models",
    "slack_installations",
    "slack_models",
    "usage_models",
]
