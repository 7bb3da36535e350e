"""`keybot scan` never lets a leak through and never litters (issue 10, finding 10).

Files it was asked to scan and could not (over the cap, a FIFO, unreadable) fail the run unless
--skip-unreadable; UTF-16, binary and large files are scanned instead of skipped; nothing is created in the
current directory. Registry-free (--no-registry) where the registry plays no part.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bot.cli.scan import MAX_FILE_BYTES
from tests.test_scan import KEYBOT, assert_never_shown, github_token, keybot


def test_cli_scans_binary_utf16_and_large_files_instead_of_skipping_them(tmp_path: Path) -> None:
    """Finding 10: files over 5 MB, in UTF-16 or with a leading NUL byte were skipped, and the exit was 0."""
    tree = tmp_path / "tree"
    tree.mkdir()
    tokens = {name: github_token() for name in ("big", "bom16", "be16", "le16", "nul", "png", "stdin")}
    repeated = github_token()  # reported once, at its first position, though far apart in the file
    (tree / "dump.sql").write_text(
        f"-- {repeated}\n" + ("x" * 999 + "\n") * 6_000 + f"token {tokens['big']}\nagain {repeated}\n"
    )
    (tree / "bom16.env").write_bytes(f"A=1\nGH_TOKEN={tokens['bom16']}\n".encode("utf-16"))
    (tree / "be16.env").write_bytes(b"\xfe\xff" + f"GH_TOKEN={tokens['be16']}\n".encode("utf-16-be"))
    (tree / "le16.env").write_bytes(f"GH_TOKEN={tokens['le16']}\n".encode("utf-16-le"))  # no BOM
    (tree / "notes.txt").write_bytes(b"\0" + f"token: {tokens['nul']}\n".encode())
    (tree / "image.png").write_bytes(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe" + tokens["png"].encode() + b"\0\x01"
    )

    result = keybot(None, "scan", "--no-registry", "tree", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    located = {line.split(": ")[0]: line.split(" ")[2] for line in result.stdout.splitlines()}
    assert len(located) == len(result.stdout.splitlines())
    assert located == {
        "tree/dump.sql:1:4": f"ghp_...{repeated[-4:]}",
        "tree/be16.env:1:10": f"ghp_...{tokens['be16'][-4:]}",
        "tree/bom16.env:2:10": f"ghp_...{tokens['bom16'][-4:]}",
        "tree/dump.sql:6002:7": f"ghp_...{tokens['big'][-4:]}",
        "tree/image.png:3:11": f"ghp_...{tokens['png'][-4:]}",
        "tree/le16.env:1:10": f"ghp_...{tokens['le16'][-4:]}",
        "tree/notes.txt:1:9": f"ghp_...{tokens['nul'][-4:]}",
    }, result.stdout
    assert "skipped" not in result.stderr
    for token in tokens.values():
        assert_never_shown(token, result.stdout, result.stderr)

    piped = keybot(
        None, "scan", "--no-registry", "-", stdin="y" * 6_000_000 + f"\n{tokens['stdin']}\n", cwd=tmp_path
    )
    assert piped.returncode == 1 and piped.stdout.startswith("<stdin>:2:1: github_token"), piped.stderr


def test_cli_fails_on_files_it_could_not_scan_unless_told_to_skip(tmp_path: Path) -> None:
    """Finding 10: a FIFO hung the scan, and a file it could not read was skipped with exit 0."""
    (tmp_path / "tree").mkdir()
    os.mkfifo(tmp_path / "tree" / "pipe")  # inside a tree: holds no stored content, passed over
    os.mkfifo(tmp_path / "fifo")
    with open(tmp_path / "huge.bin", "wb") as handle:  # sparse: over the cap without using the disk
        handle.truncate(MAX_FILE_BYTES + 1)
    (tmp_path / "clean.txt").write_text("nothing here\n")
    inputs = ["fifo", "huge.bin", "clean.txt", "tree"]

    failed = keybot(None, "scan", "--no-registry", *inputs, cwd=tmp_path)
    assert failed.returncode == 2 and failed.stdout == "", failed.stderr
    assert "cannot scan fifo: not a regular file (a FIFO); not opened" in failed.stderr
    assert "cannot scan huge.bin: larger than 200 MB" in failed.stderr
    assert "passed over tree/pipe: not a regular file" in failed.stderr
    assert "2 input(s) could not be scanned" in failed.stderr and "Traceback" not in failed.stderr

    skipped = keybot(None, "scan", "--no-registry", "--skip-unreadable", *inputs, cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped fifo: not a regular file (a FIFO); not opened (--skip-unreadable)" in skipped.stderr
    assert "no secrets found (1 input(s) scanned, 2 skipped)" in skipped.stderr

    token = github_token()
    (tmp_path / "clean.txt").write_text(f"oops {token}\n")
    for flags in ([], ["--skip-unreadable"]):  # a hit is never masked, whatever else went wrong
        hit = keybot(None, "scan", "--no-registry", *flags, *inputs, cwd=tmp_path)
        assert hit.returncode == 1 and hit.stdout.startswith("clean.txt:1:6: github_token"), hit.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_cli_fails_on_a_file_it_may_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.env"
    secret.write_text(f"T={github_token()}\n")
    secret.chmod(0)
    denied = keybot(None, "scan", "--no-registry", "secret.env", cwd=tmp_path)
    assert (
        denied.returncode == 2 and "cannot scan secret.env: cannot read: Permission denied" in denied.stderr
    )
    allowed = keybot(None, "scan", "--no-registry", "--skip-unreadable", "secret.env", cwd=tmp_path)
    assert allowed.returncode == 0 and "skipped secret.env" in allowed.stderr


def test_cli_never_creates_files_in_the_current_directory(tmp_path: Path) -> None:
    """Finding 10: without --no-registry, a scan created keybot.db and .keybot/ wherever it ran."""
    empty, outside = tmp_path / "empty", tmp_path / "outside"
    empty.mkdir()
    outside.mkdir()
    token = github_token()
    (outside / "app.env").write_text(f"GH_TOKEN={token}\n")
    (outside / "clean.txt").write_text("hello\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "SLACK_", "VAULT_", "OPENAI_", "KEYBOT_"))
    }
    for target, code in (("app.env", 1), ("clean.txt", 0)):
        result = subprocess.run(
            [*KEYBOT, "scan", str(outside / target)],
            capture_output=True,
            text=True,
            env=env,
            cwd=empty,
            timeout=60,
            check=False,
        )
        assert result.returncode == code, result.stderr
        assert "no registry database" in result.stderr and "Traceback" not in result.stderr
        assert list(empty.iterdir()) == []
    assert sorted(p.name for p in outside.iterdir()) == ["app.env", "clean.txt"]


def test_cli_reads_an_existing_registry_without_writing_to_it(tmp_path: Path) -> None:
    """A database keybot never initialised is read, not migrated: no tables, no fingerprint check row."""
    database = tmp_path / "other.db"
    sqlite3.connect(database).close()
    before = database.read_bytes()
    result = keybot(f"sqlite:///{database}", "scan", "-", stdin=f"{github_token()}\n", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "registry not consulted (the database holds no keybot registry)" in result.stderr
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
