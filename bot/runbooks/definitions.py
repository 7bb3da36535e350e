"""Runbook definitions (`runbooks/*.yaml`), validated at start-up so a bad file fails loudly and early."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.registry.schemas import ENVIRONMENTS

Action = Literal[
    "identify",
    "assess",
    "contain",
    "mint",
    "distribute",
    "verify_new",
    "revoke_old",
    "verify_revoked",
    "audit",
    "cleanup",
    "notify",
]
ACTIONS: tuple[str, ...] = get_args(Action)
# Steps that change something outside keybot; the ordering rules below are about them.
ORDER_RULES: tuple[tuple[str, str, str], ...] = (
    ("verify_new", "revoke_old", "staged mode never revokes before the replacement is verified"),
    ("mint", "verify_new", "the replacement must exist before it can be verified"),
    ("revoke_old", "verify_revoked", "revocation must happen before it is verified"),
    ("verify_revoked", "cleanup", "the leaked Vault version is destroyed only after revocation is verified"),
)


class RunbookError(Exception):
    """A definition is invalid; the message names the file, the step and the reason."""


class ApprovalRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environments: list[str] = Field(min_length=1)
    modes: list[str] | None = None
    two_person: bool = True

    def applies(self, environment: str, mode: str) -> bool:
        return environment in self.environments and (self.modes is None or mode in self.modes)


class StepDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    title: str = Field(min_length=1, max_length=80)
    retries: int = Field(3, ge=0, le=20)
    backoff_seconds: float = Field(1.0, ge=0, le=300)
    timeout_seconds: float = Field(60, gt=0, le=3_600)
    """The step's total time budget, every attempt and backoff included; then it needs attention."""
    approval: ApprovalRule | None = None
    manual: bool = False
    optional: bool = False
    instructions: str | None = Field(None, max_length=2000)
    tells: str | None = Field(None, max_length=500)


class RunbookDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    title: str
    description: str = ""
    incident: bool = True
    default_mode: str
    modes: dict[str, list[str]] = Field(min_length=1)
    steps: dict[str, StepDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RunbookDefinition:
        if self.default_mode not in self.modes:
            raise ValueError(f"default_mode {self.default_mode!r} is not one of the modes")
        for mode, names in self.modes.items():
            for name in names:
                if name not in self.steps:
                    raise ValueError(f"mode {mode}: step {name}: not defined under steps")
            if len(set(names)) != len(names):
                raise ValueError(f"mode {mode}: a step is listed twice")
            actions = [self.steps[n].action for n in names]
            for first, then, why in ORDER_RULES:
                if first == "verify_new" and mode != "staged":
                    continue
                if then in actions and first in actions and actions.index(first) > actions.index(then):
                    raise ValueError(f"mode {mode}: step {names[actions.index(then)]}: {why}")
                if then in actions and first not in actions:
                    raise ValueError(
                        f"mode {mode}: step {names[actions.index(then)]}: {why} (no {first} step)"
                    )
        for name, step in self.steps.items():
            if step.approval:
                unknown = set(step.approval.environments) - set(ENVIRONMENTS)
                if unknown:
                    raise ValueError(f"step {name}: approval names unknown environment(s) {sorted(unknown)}")
                if step.approval.modes and set(step.approval.modes) - set(self.modes):
                    raise ValueError(f"step {name}: approval names an unknown mode")
        return self

    def plan(self, mode: str) -> list[tuple[str, StepDefinition]]:
        return [(name, self.steps[name]) for name in self.modes[mode]]


def load_runbook(path: Path) -> RunbookDefinition:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RunbookError(f"{path}: cannot read: {error}") from None
    try:
        definition = RunbookDefinition.model_validate(document)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"])
            problems.append(
                f"{where + ': ' if where else ''}{str(item['msg']).removeprefix('Value error, ')}"
            )
        raise RunbookError(f"{path}: " + "; ".join(problems)) from None
    if definition.name != path.stem:
        raise RunbookError(f"{path}: name {definition.name!r} must match the file name {path.stem!r}")
    return definition


def load_runbooks(directory: Path) -> dict[str, RunbookDefinition]:
    """Every `*.yaml` directly in `directory`; any invalid one stops start-up."""
    runbooks = {}
    for path in sorted(directory.glob("*.yaml")):
        definition = load_runbook(path)
        runbooks[definition.name] = definition
    if not runbooks:
        raise RunbookError(f"{directory}: no runbook definitions (*.yaml) found")
    return runbooks
