"""`keybot detect score`, called in-process through the real CLI entry point."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.cli import main
from bot.detection.anomaly.csvscore import CsvInputError, parse_timestamp, score_csv
from bot.detection.anomaly.detector import score_series


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main.app, ["detect", "score", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _series(path: Path, rows: int = 400) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(4)
    stamps = [f"2014-04-{1 + i // 288:02d} {(i // 12) % 24:02d}:{(i * 5) % 60:02d}:00" for i in range(rows)]
    values = [f"{v:.3f}" for v in rng.normal(40, 3, rows)]
    values[300] = "400.5"
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values, strict=True)))
    return stamps, values


def test_scores_a_file_preserving_rows_and_matching_the_paging_detector(tmp_path: Path) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    stamps, values = _series(source)
    code, _out, _err = _invoke(str(source), "--out", str(target))
    assert code == 0
    rows = list(csv.reader(target.open()))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert [r[0] for r in rows[1:]] == stamps and [r[1] for r in rows[1:]] == values
    scores = np.array([float(r[2]) for r in rows[1:]])
    expected = score_series([parse_timestamp(s) for s in stamps], [float(v) for v in values])
    assert np.allclose(scores, expected, atol=1e-6)
    assert scores.argmax() == 300 and scores[300] > 0.95


def test_no_out_writes_stdout(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("timestamp,value\n1396310400,1.5\n2014-04-01T00:10:00Z,\n2014-04-01 00:15:00+00:00,2\n")
    code, out, _err = _invoke(str(source))
    assert code == 0
    assert out.splitlines() == [
        "timestamp,value,anomaly_score",
        "1396310400,1.5,0.000000",
        "2014-04-01T00:10:00Z,,0.000000",  # a missing value is kept, scored 0
        "2014-04-01 00:15:00+00:00,2,0.000000",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("timestamp,value\n2014-04-01 00:00:00,1\nyesterday,2\n", "line 3: timestamp 'yesterday'"),
        ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,lots\n", "line 3: value 'lots'"),
        ("timestamp,value\n2014-04-01 00:00:00,1,9\n", "line 2: expected 2 fields"),
        ("time,val\n2014-04-01 00:00:00,1\n", "line 1: the header must name `timestamp` and `value`"),
        ("2014-04-01 00:00:00,1\n", "the header must name"),
        ("timestamp,value,value\n0,1,2\n", "the header must name"),
        ("", "the file is empty"),
    ],
)
def test_bad_input_is_refused_with_its_line_and_leaves_no_output(
    tmp_path: Path, content: str, message: str
) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(content)
    code, _out, err = _invoke(str(source), "--out", str(target))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and list(tmp_path.iterdir()) == [source]


def test_missing_file_non_utf8_and_unwritable_output_are_one_line_errors(tmp_path: Path) -> None:
    code, _out, err = _invoke(str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"timestamp,value\n2014-04-01 00:00:00,caf\xe9\n")
    code, _out, err = _invoke(str(latin))
    assert code == 2 and "not UTF-8" in err
    code, _out, err = _invoke(str(latin), "--out", str(tmp_path / "missing" / "out.csv"))
    assert code == 2 and "cannot write" in err and "out.csv" in err
    code, _out, err = _invoke(str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_score_csv_streams_and_counts_rows() -> None:
    sink = io.StringIO()
    count = score_csv(io.StringIO("\ufefftimestamp,value\n0,1\n60,2\n\n120,3\n"), sink)
    assert count == 3 and len(sink.getvalue().splitlines()) == 4
    with pytest.raises(CsvInputError, match="line 2"):
        score_csv(io.StringIO("timestamp,value\n" + "9" * 2000 + ",1\n"), io.StringIO())


def test_columns_are_found_by_name_and_other_columns_are_never_used() -> None:
    points = [(60 * i, i % 3 + (40 if i == 150 else 0)) for i in range(200)]
    labelled, plain, swapped = io.StringIO(), io.StringIO(), io.StringIO()
    score_csv(
        io.StringIO("timestamp,value,is_anomaly\n" + "".join(f"{t},{v},{int(v > 9)}\n" for t, v in points)),
        labelled,
    )
    score_csv(io.StringIO("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in points)), plain)
    score_csv(io.StringIO("Value,Timestamp\n" + "".join(f"{v},{t}\n" for t, v in points)), swapped)
    assert labelled.getvalue() == plain.getvalue() == swapped.getvalue()
    assert max(float(line.split(",")[2]) for line in plain.getvalue().splitlines()[1:]) > 0.9
