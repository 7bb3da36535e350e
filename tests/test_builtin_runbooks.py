"""An installed keybot finds its runbooks from any directory: the package ships the repository's runbooks/."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from bot.config import BUILTIN_RUNBOOKS, Settings

REPO = Path(__file__).resolve().parent.parent


def test_outside_a_checkout_the_builtin_runbooks_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYBOT_RUNBOOKS_DIR", raising=False)
    assert Settings().runbooks_dir == BUILTIN_RUNBOOKS
    assert (BUILTIN_RUNBOOKS / "revoke-replace-audit-notify.yaml").is_file()


def test_a_local_runbooks_directory_or_the_variable_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYBOT_RUNBOOKS_DIR", raising=False)
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "mine.yaml").write_text("name: mine\n")
    assert Settings().runbooks_dir == Path("runbooks")
    monkeypatch.setenv("KEYBOT_RUNBOOKS_DIR", str(tmp_path / "elsewhere"))
    assert Settings().runbooks_dir == tmp_path / "elsewhere"


def test_the_package_data_covers_every_shipped_runbook_file() -> None:
    """The wheel is built from these globs: a runbook file they miss would be absent once installed."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bot"]
    assert BUILTIN_RUNBOOKS.resolve() == (REPO / "runbooks").resolve()
    shipped = [p for p in (REPO / "runbooks").rglob("*") if p.is_file()]
    assert shipped
    for path in shipped:
        relative = "builtin_runbooks/" + path.relative_to(REPO / "runbooks").as_posix()
        assert any(fnmatch(relative, pattern) for pattern in globs), f"{relative} is not packaged"


def test_keybot_runs_from_an_unrelated_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYBOT_", "DATABASE_URL"))}
    env["KEYBOT_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "keybot"), "runbook", "show", "revoke-replace-audit-notify"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "revoke" in done.stdout.lower()
    assert "no runbook definitions" not in done.stderr
