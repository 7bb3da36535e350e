"""Leak recognition (`bot.detection.leaks`) and `keybot scan` as CI and pre-commit hooks run it."""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.detection.leaks import LeakHit, TextTooLarge, find_leaks, leaks_in_diff
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import parse_yaml
from bot.registry.store import apply_import
from tests.conftest import TEST_FINGERPRINT_KEY

REPO = Path(__file__).resolve().parents[1]
PRE_COMMIT_EXAMPLE = REPO / "runbooks" / "examples" / "pre-commit-config.yaml"
KEYBOT = [sys.executable, "-c", "from bot.cli.main import main; main()"]
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
OWNER = "U07ALICE01"


def _random(n: int, alphabet: str = URLSAFE) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def openai_project_key() -> str:
    return "sk-proj-" + _random(74) + "T3BlbkFJ" + _random(74)


def aws_access_key() -> str:
    return "AKIA" + _random(16, string.ascii_uppercase + "234567")  # AWS key ids are base32


def github_token() -> str:
    return "ghp_" + _random(36, ALNUM)


def slack_token() -> str:
    return f"xoxb-{_random(12, string.digits)}-{_random(13, string.digits)}-{_random(24, ALNUM)}"


def register(session: Session, fingerprinter: Fingerprinter, secret: str, extra: str = "") -> None:
    """Import one key by its secret (so it gets a fingerprint), owned by OWNER."""
    document = f"""
teams:
  - name: payments
    channel: "#payments-oncall"
keys:
  - name: leaked-key
    provider: openai
    environment: staging
    secret: {secret}
    team: payments
    owners: [{OWNER}]
    backups: [U07BOBBY02]
{extra}"""
    apply_import(session, parse_yaml(document), fingerprinter)


def assert_never_shown(secret: str, *outputs: str) -> None:
    """Only the family and last 4 may appear: no 12-character window of the secret's middle."""
    middle = secret[8:-4]
    for output in outputs:
        assert secret not in output
        for i in range(len(middle) - 11):
            assert middle[i : i + 12] not in output


# --- the service -------------------------------------------------------------------------------------


def test_registered_key_is_named_with_owners_and_position(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    secret, other = openai_project_key(), aws_access_key()
    register(session, fingerprinter, secret)
    text = f"# config\nmodel: gpt\n  api_key: '{secret}'\naws = {other}\n"
    hits = find_leaks(session, text, fingerprinter)
    assert [h.kind for h in hits] == ["openai_project", "aws_access_key"]
    first, second = hits
    assert (first.line, first.column) == (3, 13)
    assert first.key_name == "leaked-key" and first.key_id is not None
    assert first.owners == [OWNER] and first.environment == "staging"
    assert first.redacted == f"sk-proj-...{secret[-4:]}" and first.provider == "openai"
    assert (second.line, second.column) == (4, 7)
    assert second.key_id is None and second.key_name is None and second.owners == []
    assert "value" not in LeakHit.__dataclass_fields__
    assert_never_shown(secret, repr(hits))


def test_a_matching_redacted_form_is_not_proof(session: Session, fingerprinter: Fingerprinter) -> None:
    """A registered key with the same family and last 4 is a different key until the fingerprint says so."""
    secret = openai_project_key()
    same_tail = f"  - name: same-tail\n    provider: openai\n    redacted: sk-proj-...{secret[-4:]}\n"
    register(session, fingerprinter, openai_project_key(), same_tail)
    (hit,) = find_leaks(session, f"OPENAI_API_KEY={secret}", fingerprinter)
    assert hit.key_id is None and hit.redacted.endswith(secret[-4:])


def test_repeated_secret_is_one_hit_at_its_first_position(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    secret, token, slack = openai_project_key(), github_token(), slack_token()
    register(session, fingerprinter, secret)
    text = f"a\n{token} {secret}\n{secret}\n\n{slack} x={secret} {token}\n"
    hits = find_leaks(session, text, fingerprinter)
    assert [(h.kind, h.line, h.column) for h in hits] == [
        ("github_token", 2, 1),
        ("openai_project", 2, 42),
        ("slack_token", 5, 1),
    ]
    assert hits[1].key_name == "leaked-key"


def test_without_a_registry_secrets_are_still_found() -> None:
    hits = find_leaks(None, "token=" + github_token(), None)
    assert len(hits) == 1 and hits[0].key_id is None and hits[0].column == 7


def test_text_over_the_limit_is_refused_not_cut() -> None:
    with pytest.raises(TextTooLarge):
        find_leaks(None, "x" * 50 + github_token(), None, max_bytes=60)
    with pytest.raises(TextTooLarge):
        find_leaks(None, "é" * 40, None, max_bytes=60)  # 80 bytes in UTF-8


def test_diff_scans_only_added_lines_with_new_file_numbers(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    secret, removed, context, token = openai_project_key(), aws_access_key(), github_token(), github_token()
    register(session, fingerprinter, secret)
    diff = f"""diff --git a/app/settings.py b/app/settings.py
index 83db48f..bf269f4 100644
--- a/app/settings.py
+++ b/app/settings.py
@@ -10,4 +10,5 @@ class Settings:
     debug = False
-    aws = "{removed}"
+    openai = "{secret}"
     github = "{context}"
+    again = "{secret}"

@@ -40,2 +41,3 @@ def load():
     pass
+++{token}
     return
\\ No newline at end of file
diff --git a/old.env b/old.env
deleted file mode 100644
--- a/old.env
+++ /dev/null
@@ -1 +0,0 @@
-KEY={aws_access_key()}
diff --git "a/conf/caf\\303\\251 file.env" "b/conf/caf\\303\\251 file.env"
--- /dev/null
+++ "b/conf/caf\\303\\251 file.env"
@@ -0,0 +1,2 @@
+# new
+X={secret}
"""
    found = leaks_in_diff(session, diff, fingerprinter)
    assert found.is_diff and not found.too_large
    located = [(path, h.kind, h.line, h.column, h.key_name) for path, h in found.hits]
    assert located == [
        ("app/settings.py", "openai_project", 11, 15, "leaked-key"),
        ("app/settings.py", "github_token", 42, 3, None),
        ("conf/café file.env", "openai_project", 2, 3, "leaked-key"),
    ]
    streamed = leaks_in_diff(session, iter(diff.splitlines(keepends=True)), fingerprinter)
    assert streamed.hits == found.hits


def test_diff_limits_and_non_diffs() -> None:
    token = github_token()
    diff = (
        f"+++ b/big.txt\n@@ -0,0 +1,3 @@\n+{'x' * 40}\n+{token}\n+y\n"
        f"+++ b/small.txt\n@@ -0,0 +1 @@\n+{token}\n"
    )
    found = leaks_in_diff(None, diff, None, max_bytes=60)
    assert found.too_large == ["big.txt"] and [p for p, _ in found.hits] == ["small.txt"]
    plain = leaks_in_diff(None, f"just text {token}\n", None)
    assert not plain.is_diff and not plain.empty and not plain.hits
    assert leaks_in_diff(None, "\n", None).empty


def test_pre_commit_example_is_a_local_hook_running_keybot_scan() -> None:
    config = yaml.safe_load(PRE_COMMIT_EXAMPLE.read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    hook = repo["hooks"][0]
    assert hook["entry"].startswith("keybot scan") and hook["language"] == "system"
    assert hook["pass_filenames"] is True


# --- the CLI -------------------------------------------------------------------------------------------


def keybot(
    database_url: str | None,
    *args: str,
    stdin: str | None = None,
    cwd: Path,
    fingerprint_key: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAULT_", "OPENAI_", "KEYBOT_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url or f"sqlite:///{cwd}/unused.db",
            "KEYBOT_FINGERPRINT_KEY": fingerprint_key or TEST_FINGERPRINT_KEY,
            "KEYBOT_STATE_DIR": str(cwd / "state"),
            "COLUMNS": "200",
        }
    )
    return subprocess.run(
        [*KEYBOT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def registered(database: Database, fingerprinter: Fingerprinter) -> str:
    """A secret imported (and committed) into the registry, so a keybot subprocess sees it."""
    secret = openai_project_key()
    with database.session() as session:
        register(session, fingerprinter, secret)
    return secret


def test_cli_names_the_owner_of_a_leaked_key(database: Database, registered: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "node_modules" / "lib").mkdir(parents=True)
    (project / "src").mkdir()
    token = github_token()
    (project / ".env").write_text(f"DEBUG=1\nOPENAI_API_KEY={registered}\n")
    (project / "src" / "app.py").write_text(f'print("hello")\nTOKEN = "{token}"\n')
    (project / ".git" / "config").write_text(f"[remote]\n url = https://{github_token()}@github.com/x\n")
    (project / "node_modules" / "lib" / "index.js").write_text(f"k='{aws_access_key()}'\n")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "README.md").write_text("nothing to see here\n")

    leaked = keybot(database.url, "scan", "project", cwd=tmp_path)
    assert leaked.returncode == 1, leaked.stderr
    assert leaked.stdout.splitlines() == [
        f"project/.env:2:16: openai_project sk-proj-...{registered[-4:]} — registered key leaked-key "
        f"(owners <@{OWNER}>)",
        f"project/src/app.py:2:10: github_token ghp_...{token[-4:]} — not in the registry",
    ]
    assert "2 leaked secret(s) found, 1 of them registered" in leaked.stderr
    assert_never_shown(registered, leaked.stdout, leaked.stderr)
    assert_never_shown(token, leaked.stdout, leaked.stderr)

    clean = keybot(database.url, "scan", "clean", cwd=tmp_path)
    assert clean.returncode == 0 and clean.stdout == "", clean.stderr
    assert "no secrets found" in clean.stderr

    wrong_key = keybot(database.url, "scan", "project", cwd=tmp_path, fingerprint_key="x" * 40)
    assert wrong_key.returncode == 2 and "KEYBOT_FINGERPRINT_KEY differs" in wrong_key.stderr
    assert "Traceback" not in wrong_key.stderr


@pytest.mark.cli_surface
def test_cli_diff_from_stdin_and_json(database: Database, registered: str, tmp_path: Path) -> None:
    removed = aws_access_key()
    diff = (
        "diff --git a/deploy/prod.env b/deploy/prod.env\n--- a/deploy/prod.env\n+++ b/deploy/prod.env\n"
        f"@@ -3,2 +3,2 @@\n REGION=eu\n-AWS_KEY={removed}\n+OPENAI_API_KEY={registered}\n"
    )
    from_diff = keybot(database.url, "scan", "--diff", stdin=diff, cwd=tmp_path)
    assert from_diff.returncode == 1, from_diff.stderr
    assert from_diff.stdout == (
        f"deploy/prod.env:4:16: openai_project sk-proj-...{registered[-4:]} — registered key leaked-key "
        f"(owners <@{OWNER}>)\n"
    )
    assert removed[-4:] not in from_diff.stdout
    only_removed = keybot(database.url, "scan", "--diff", stdin=diff.rsplit("\n+", 1)[0] + "\n", cwd=tmp_path)
    assert only_removed.returncode == 0 and only_removed.stdout == ""

    (tmp_path / "notes.txt").write_text(f"see {registered}\n")
    as_json = keybot(database.url, "scan", "--json", "notes.txt", cwd=tmp_path)
    assert as_json.returncode == 1, as_json.stderr
    (row,) = json.loads(as_json.stdout)
    assert row["path"] == "notes.txt" and (row["line"], row["column"]) == (1, 5)
    assert row["key_name"] == "leaked-key" and row["owners"] == [OWNER] and row["environment"] == "staging"
    assert row["redacted"] == f"sk-proj-...{registered[-4:]}"
    assert_never_shown(registered, from_diff.stdout, from_diff.stderr, as_json.stdout, as_json.stderr)


def test_cli_reports_bad_paths_and_non_diffs(tmp_path: Path) -> None:
    """Registry-free (--no-registry) so it needs no database; a hit still wins over a bad path (exit 1)."""
    token = aws_access_key()
    (tmp_path / "keys.txt").write_text(f"id={token}\n")
    result = keybot(None, "scan", "--no-registry", "missing.txt", "keys.txt", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert (
        result.stdout
        == f"keys.txt:1:4: aws_access_key AKIA...{token[-4:]} — registry not consulted (--no-registry)\n"
    )
    assert "cannot read missing.txt: No such file or directory" in result.stderr

    (tmp_path / "keys.txt").unlink()
    problems_only = keybot(None, "scan", "--no-registry", "--skip-unreadable", "missing.txt", cwd=tmp_path)
    assert problems_only.returncode == 2 and problems_only.stdout == ""  # a typo in a hook is never skipped
    assert (
        "cannot read missing.txt" in problems_only.stderr and "could not be scanned" in problems_only.stderr
    )

    big_diff = "+++ b/big.txt\n@@ -0,0 +1,6 @@\n" + ("+" + "x" * 999_999 + "\n") * 6
    too_large = keybot(None, "scan", "--no-registry", "--diff", stdin=big_diff, cwd=tmp_path)
    assert too_large.returncode == 2, too_large.stderr  # was a note, and exit 0
    assert "cannot scan big.txt in <stdin>: added lines exceed 5 MB" in too_large.stderr
    allowed = keybot(
        None, "scan", "--no-registry", "--diff", "--skip-unreadable", stdin=big_diff, cwd=tmp_path
    )
    assert allowed.returncode == 0 and "skipped big.txt in <stdin>" in allowed.stderr

    not_a_diff = keybot(None, "scan", "--no-registry", "--diff", stdin=f"key {token}\n", cwd=tmp_path)
    assert not_a_diff.returncode == 2 and "is not a unified diff" in not_a_diff.stderr

    usage = keybot(None, "scan", cwd=tmp_path)
    assert usage.returncode == 2 and "nothing to scan" in usage.stderr
