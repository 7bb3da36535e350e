"""Issue 10 finding 5: hostile registry files are harmless. Alias bombs and recursive aliases are refused
before anything is expanded, impossible values are line/field errors (never tracebacks), CSV exports
cannot run as spreadsheet formulas, and names cannot hide or reorder what Slack shows."""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bot.db.session import Database
from bot.registry import importer
from bot.registry.export import export_records
from bot.registry.exporter import to_csv
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import RecordError, neutralise_cell, read_csv, read_file, read_yaml, restore_cell
from bot.registry.models import Consumer, Key, KeyOwner, Team
from bot.registry.store import apply_import
from tests.test_cli import keybot


def _alias_bomb(levels: int) -> str:
    """The classic "billion laughs": each level is nine aliases of the one before (9**levels strings)."""
    lines = ["teams:", '  - &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  - &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nkeys:\n  - name: k\n    tags: *l{levels}\n"


def _errors(text: str) -> list[str]:
    return [str(e) for e in read_yaml(text, "f.yaml").errors]


@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused_before_expansion(levels: int) -> None:
    text = _alias_bomb(levels)
    assert len(text) < 600
    tracemalloc.start()
    try:
        errors = _errors(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(errors) == 1
    assert errors[0].endswith(": file: aliases expand to more than 100000 extra values (alias bomb?)")
    assert peak < 5_000_000  # bytes: the graph is measured, never expanded


def test_modest_aliases_still_work() -> None:
    text = "keys:\n  - name: a\n    tags: &t [llm, pci]\n  - name: b\n    tags: *t\n"
    parsed = read_yaml(text)
    assert parsed.errors == [] and [k.tags for k in parsed.keys] == [["llm", "pci"], ["llm", "pci"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "keys:\n  - &k {name: x, tags: [*k]}\n",
            "line 2: file: an alias refers to the node that contains it (recursive alias)",
        ),
        (
            "keys: &l\n  - *l\n",
            "line 1: file: an alias refers to the node that contains it (recursive alias)",
        ),
        (
            "keys:\n  - name: x\n    last_rotated: 2026-13-45\n",
            "line 3: last_rotated: Input should be a valid datetime or date, "
            "month value is outside expected range of 1-12",
        ),
        (
            "keys:\n  - name: x\n    last_rotated: 2026-02-30 10:00:00\n",
            "line 3: last_rotated: Input should be a valid datetime or date, day value is outside",
        ),
        ("keys:\n  - name: x\n    rotation_days: !!int sk-not-a-number\n", "line 3: file: not valid YAML: "),
        ("keys: " + "[" * 5000 + "]" * 5000 + "\n", "line 1: file: not valid YAML: exceeded maximum nesting"),
        ("keys: " + "[" * 60 + "]" * 60 + "\n", "line 1: file: nested deeper than 50 levels"),
    ],
)
def test_hostile_structure_is_a_line_error_not_a_traceback(text: str, expected: str) -> None:
    errors = _errors(text)
    assert len(errors) == 1 and errors[0].startswith(expected), errors
    assert "sk-not-a-number" not in errors[0]


def test_size_is_capped_for_text_and_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importer, "MAX_FILE_BYTES", 64)
    big = "# padding\n" * 10 + "keys: []\n"
    assert _errors(big) == ["line 0: file: larger than 64 bytes"]
    assert [str(e) for e in read_csv("name\n" + "k\n" * 40).errors] == ["line 0: file: larger than 64 bytes"]
    (tmp_path / "big.yaml").write_text(big)
    assert [e.message for e in read_file(tmp_path / "big.yaml").errors] == ["larger than 64 bytes"]


UNSAFE = {
    "bidi override": ("\u202e", "contains bidirectional-override characters"),
    "bidi isolate": ("\u2066", "contains bidirectional-override characters"),
    "left-to-right mark": ("\u200e", "contains bidirectional-override characters"),
    "arabic letter mark": ("\u061c", "contains bidirectional-override characters"),
    "zero-width space": ("\u200b", "contains zero-width characters"),
    "zero-width joiner": ("\u200d", "contains zero-width characters"),
    "word joiner": ("\u2060", "contains zero-width characters"),
    "byte order mark": ("\ufeff", "contains zero-width characters"),
    "escape": ("\x1b", "contains control characters"),
    "c1 control": ("\x85", "contains control characters"),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE))
def test_names_that_hide_or_reorder_text_are_refused(kind: str) -> None:
    char, message = UNSAFE[kind]
    char = f"\\u{ord(char):04x}"  # a YAML escape: the YAML reader itself refuses some of them raw
    text = (
        "teams:\n"
        f'  - name: "pay{char}ments"\n'
        "keys:\n"
        f'  - name: "prod{char}-key"\n'
        "    consumers:\n"
        "      - name: ok\n"
        f'      - name: "check{char}out"\n'
        f'    description: "Fraud {char}explanations"\n'
        f'    tags: [llm, "p{char}ci"]\n'
    )
    assert set(read_yaml(text).errors) == {
        RecordError(2, "name", message),
        RecordError(4, "name", message),
        RecordError(7, "consumers.1.name", message),
        RecordError(8, "description", message),
        RecordError(9, "tags.1", message),
    }


def test_csv_names_with_bidi_characters_are_refused() -> None:
    errors = read_csv("name,team,consumers\nok,payments,api\nad\u202emin,payments,api\n").errors
    assert errors == [RecordError(3, "name", "contains bidirectional-override characters")]


def test_descriptions_may_span_lines() -> None:
    parsed = read_yaml('keys:\n  - name: k\n    description: "first line\\n\\tsecond line"\n')
    assert parsed.errors == [] and parsed.keys[0].description == "first line\n\tsecond line"


@pytest.mark.parametrize(
    "value", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=already", "''=twice"]
)
def test_formula_cells_are_quoted_and_restored(value: str) -> None:
    cell = neutralise_cell(value)
    assert cell.startswith("'") and restore_cell(cell) == value


@pytest.mark.parametrize("value", ["sk-proj-...Xy9Q", "payments-openai-prod", "'quoted", "it's", ""])
def test_ordinary_cells_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value and restore_cell(value) == value


HOSTILE = """\
teams:
  - name: "=HYPERLINK(\\"http://evil\\")"
keys:
  - name: "=cmd|' /C calc'!A0"
    team: "=HYPERLINK(\\"http://evil\\")"
    redacted: sk-proj-...Xy9Q
    consumers:
      - name: "@SUM(1+1)"
    tags: ["-2+3", "+x"]
    description: "@import"
  - name: "'=looks-quoted"
    description: "'=also"
"""


def test_csv_export_neutralises_formulas_and_round_trips(
    session: Session, fingerprinter: Fingerprinter
) -> None:
    apply_import(session, read_yaml(HOSTILE), fingerprinter)
    first = export_records(session)
    exported = to_csv(first)
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=cmd|' /C calc'!A0" in cells and "sk-proj-...Xy9Q" in cells and "''=looks-quoted" in cells
    for model in (KeyOwner, Consumer, Key, Team):
        session.execute(model.__table__.delete())
    parsed = read_csv(exported)
    assert parsed.errors == []
    apply_import(session, parsed, fingerprinter)
    assert export_records(session) == first


def test_cli_refuses_hostile_files_with_one_line_each(database: Database, tmp_path: Path) -> None:
    files = {
        "bomb.yaml": (_alias_bomb(9), "aliases expand to more than 100000 extra values"),
        "loop.yaml": ("keys:\n  - &k {name: x, tags: [*k]}\n", "line 2: file: an alias refers to the node"),
        "date.yaml": ("keys:\n  - name: x\n    last_rotated: 2026-13-45\n", "line 3: last_rotated: "),
    }
    for name, (text, expected) in files.items():
        path = tmp_path / name
        path.write_text(text)
        result = keybot(database.url, "registry", "import", "--dry-run", str(path), cwd=tmp_path)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
