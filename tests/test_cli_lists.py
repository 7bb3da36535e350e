"""List commands: `--json` with typed fields, and ids shown whole however narrow or piped the output is."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime

import pytest

from tests.test_crash_recovery import KEYBOT, keybot, keybot_env
from tests.world import World, unique_name


def narrow(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI piped (stdout is not a terminal) on a 40-column console."""
    env = {**keybot_env(world), "COLUMNS": "40"}
    return subprocess.run([*KEYBOT, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.cli_surface
def test_runs_list_shows_whole_ids_that_paste_back_into_runs_show(world: World) -> None:
    name = unique_name("list")
    world.add_key(name, "staging")
    assert keybot(world, "revoke", name, "--reason", "leaked in CI", "--yes").returncode == 0
    listed = narrow(world, "runs", "list")
    assert listed.returncode == 0, listed.stderr
    match = re.search(r"run_\w+", listed.stdout)
    assert match is not None, listed.stdout
    shown_id = match.group()
    (run,) = json.loads(keybot(world, "runs", "list", "--json").stdout)
    assert shown_id == run["run"], listed.stdout
    shown = narrow(world, "runs", "show", shown_id)
    assert shown.returncode == 0 and "Revoke" in shown.stdout, shown.stderr


@pytest.mark.cli_surface
def test_runs_and_incidents_json_have_typed_fields(world: World) -> None:
    name = unique_name("json")
    key_id = world.add_key(name, "staging")
    assert keybot(world, "revoke", name, "--reason", "leaked in CI", "--yes").returncode == 0
    (run,) = json.loads(keybot(world, "runs", "list", "--json").stdout)
    assert run["key_id"] == key_id and isinstance(run["incident_id"], int)
    assert run["status"] == "succeeded" and run["drill"] is False and run["attention"] is None
    assert datetime.fromisoformat(run["created_at"]).utcoffset() is not None
    assert datetime.fromisoformat(run["finished_at"]) >= datetime.fromisoformat(run["created_at"])
    (incident,) = json.loads(keybot(world, "incidents", "list", "--all", "--json").stdout)
    assert incident["id"] == run["incident_id"] and incident["key_id"] == key_id
    assert incident["drill"] is False and incident["status"] in ("open", "contained", "resolved")
    assert incident["resolved_at"] is None or datetime.fromisoformat(incident["resolved_at"])
    assert datetime.fromisoformat(incident["opened_at"]).utcoffset() is not None
    assert json.loads(keybot(world, "runs", "list", "--json", "--status", "aborted").stdout) == []
