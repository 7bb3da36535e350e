"""bot.secrets.textfiles: what `keybot scan` reads, and how it refuses what it cannot read (issue 10, #10)."""

from __future__ import annotations

import io
import os
import secrets
import string
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.secrets import find_secrets
from bot.secrets.textfiles import Unreadable, detect_encoding, open_regular, text_chunks


def github_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Unreadable, match=r"not a regular file \(a FIFO\)"):
        open_regular(str(tmp_path / "fifo"), max_bytes=100)  # would block forever if opened for reading
    with pytest.raises(Unreadable, match=r"not a regular file \(a device\)"):
        open_regular(os.devnull, max_bytes=100)
    with pytest.raises(Unreadable, match=r"not a regular file \(a directory\)"):
        open_regular(str(tmp_path), max_bytes=100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(Unreadable, match=r"larger than 0.0001 MB"):
        open_regular(str(tmp_path / "big"), max_bytes=100)
    with pytest.raises(Unreadable, match="No such file"):
        open_regular(str(tmp_path / "missing"), max_bytes=100)


def test_a_file_swapped_for_a_fifo_after_the_stat_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stat said "regular file"; what was opened is a FIFO: opened non-blocking, refused after fstat."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(
        os, "stat", lambda path: real_stat(__file__) if path == str(fifo) else real_stat(path)
    )
    with pytest.raises(Unreadable, match="a FIFO"):
        open_regular(str(fifo), max_bytes=10**6)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain", ("utf-8", 0)),
        ("\ufeffbom".encode(), ("utf-8", 3)),
        ("le".encode("utf-16"), ("utf-16-le", 2)),
        (b"\xfe\xff" + "be".encode("utf-16-be"), ("utf-16-be", 2)),
        ("no bom here".encode("utf-16-le"), ("utf-16-le", 0)),
        ("no bom here".encode("utf-16-be"), ("utf-16-be", 0)),
        ("wide".encode("utf-32"), ("utf-32-le", 4)),
        (b"\0" + b"leading NUL then text", ("utf-8", 0)),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0", ("utf-8", 0)),
    ],
)
def test_encodings_are_recognised(data: bytes, expected: tuple[str, int]) -> None:
    assert detect_encoding(data) == expected


def test_chunks_never_split_a_secret_and_keep_positions() -> None:
    tokens = [github_token() for _ in range(200)]
    lines = [f"{i:05d} {'y' * (i % 7)} {token}" for i, token in enumerate(tokens)]
    text = "\n".join(lines) + "\n" + "z" * 90 + " " + tokens[0] + "\n"  # last line longer than a chunk
    chunks = list(text_chunks(io.BytesIO(text.encode("utf-16")), max_bytes=10**7, chunk_chars=97))
    assert "".join(c.text for c in chunks) == text
    found = []
    for chunk in chunks:
        for match in find_secrets(chunk.text):
            before = chunk.text[: match.start]
            line = chunk.first_line + before.count("\n")
            column = (
                len(before) - before.rfind("\n") - 1 if "\n" in before else chunk.first_column + len(before)
            )
            found.append((match.value, line, column))
    expected = [(token, i + 1, lines[i].index(token)) for i, token in enumerate(tokens)]
    assert found == [*expected, (tokens[0], len(lines) + 1, 91)]


def test_reading_past_the_cap_is_unreadable_after_what_was_read() -> None:
    token = github_token()
    stream = io.BytesIO(f"{token}\n".encode() + b"x\n" * 3_000_000)
    seen = []
    with pytest.raises(Unreadable, match="larger than 2 MB"):
        for chunk in text_chunks(stream, max_bytes=2_000_000, chunk_chars=1000):
            seen.extend(m.value for m in find_secrets(chunk.text))
    assert seen == [token]


def test_cli_fails_on_a_file_it_may_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied is a failure (exit 2), or a note with --skip-unreadable; works as root too."""
    secret = tmp_path / "secret.env"
    secret.write_text(f"T={github_token()}\n")
    real_open = os.open

    def denied(path: str, flags: int, mode: int = 0o777) -> int:
        if str(path) == str(secret):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", denied)
    runner = CliRunner()
    failed = runner.invoke(app, ["scan", "--no-registry", str(secret)])
    assert failed.exit_code == 2, failed.output
    assert f"cannot scan {secret}: cannot read: Permission denied" in failed.output
    skipped = runner.invoke(app, ["scan", "--no-registry", "--skip-unreadable", str(secret)])
    assert skipped.exit_code == 0, skipped.output
    assert f"skipped {secret}: cannot read: Permission denied (--skip-unreadable)" in skipped.output
