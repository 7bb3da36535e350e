"""The manifest declares every command, event and scope the app's handlers and API calls rely on."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.slack.handlers import commands, events

REPO = Path(__file__).resolve().parents[1]


def test_manifest_matches_the_app() -> None:
    manifest = yaml.safe_load((REPO / "slack-manifest.yaml").read_text())
    declared = {c["command"] for c in manifest["features"]["slash_commands"]}
    handled = {
        line.split('"')[1]
        for line in Path(commands.__file__).read_text().splitlines()
        if "@app.command(" in line
    }
    assert declared == handled == {"/revoke-key", "/key-owner", "/rotate-key"}
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "commands",
        "chat:write",
        "im:write",
        "usergroups:read",
        "channels:history",
        "groups:history",
    } <= scopes
    bot_events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_home_opened", "message.channels", "message.groups"} <= bot_events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    source = Path(events.__file__).read_text()
    assert '@app.event("message")' in source and '@app.event("app_home_opened")' in source
    readme = (REPO / "README.md").read_text()
    for scope in scopes:
        assert f"`{scope}`" in readme, f"README must justify the {scope} scope"
