"""Score a `timestamp,value` CSV with the paging detector, streaming, one row at a time.

Every output row is the input row's timestamp and value strings exactly as read, plus `anomaly_score`
computed from that row and earlier rows only: the same `DetectorBank` the paging job steps.

The header names the `timestamp` and `value` columns, in any order; other columns (a benchmark's labels,
say) are read past and never used. Rows are refused, not skipped: a row that cannot be read stops the run
with its line number, because a silently dropped row would shift every later score. A missing value (an
empty cell, `nan`, `NaN`, `null`) is not an error: it is a tick with no observation, written back with
score 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

import numpy as np

from bot.detection.anomaly.config import DetectorConfig
from bot.detection.anomaly.detector import DetectorBank

HEADER = ("timestamp", "value")
MISSING = frozenset({"", "nan", "null", "none", "na"})
MAX_FIELD = 1_000


class CsvInputError(ValueError):
    """The input cannot be scored; the message names the line and says what is wrong."""


def parse_timestamp(text: str) -> float:
    """Unix seconds from ISO 8601 (`2014-04-01 00:00:00`, `...T...Z`, with an offset; naive means UTC) or
    from a plain number of unix seconds."""
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"timestamp {stripped[:40]!r} is not finite")
        return number
    if stripped.endswith(("Z", "z")):
        stripped = stripped[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"timestamp {text.strip()[:40]!r} is neither ISO 8601 nor unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_value(text: str) -> float:
    """A float; a missing value is NaN (no observation)."""
    stripped = text.strip()
    if stripped.lower() in MISSING:
        return math.nan
    try:
        return float(stripped)
    except ValueError:
        raise ValueError(f"value {stripped[:40]!r} is not a number") from None


def _rows(source: TextIO) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(source)
    try:
        for row in reader:
            yield reader.line_num, row
    except UnicodeDecodeError:
        raise CsvInputError(f"line {reader.line_num + 1}: the file is not UTF-8 text") from None
    except csv.Error as error:
        raise CsvInputError(f"line {reader.line_num}: {error}") from None


def score_csv(source: TextIO, sink: TextIO, config: DetectorConfig | None = None) -> int:
    """Read `timestamp,value` rows from `source`, write `timestamp,value,anomaly_score` rows to `sink` as
    they are scored; return the number of data rows. Raises CsvInputError on the first unusable line."""
    rows = _rows(source)
    first = next(rows, None)
    if first is None:
        raise CsvInputError("the file is empty: expected a header line `timestamp,value`")
    line, header = first
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    if not all(name in names for name in HEADER) or len(set(names)) != len(names):
        shown = ",".join(header)[:80]
        raise CsvInputError(
            f"line {line}: the header must name `timestamp` and `value` columns, not {shown!r}"
        )
    at, of, width = names.index("timestamp"), names.index("value"), len(names)
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(("timestamp", "value", "anomaly_score"))
    bank = DetectorBank(1, config)
    value = np.empty(1)
    count = 0
    for line, row in rows:
        if not row:
            continue
        if len(row) != width:
            raise CsvInputError(f"line {line}: expected {width} fields like the header, found {len(row)}")
        stamp, text = row[at], row[of]
        if len(stamp) > MAX_FIELD or len(text) > MAX_FIELD:
            raise CsvInputError(f"line {line}: a field is longer than {MAX_FIELD} characters")
        try:
            ts = parse_timestamp(stamp)
            value[0] = parse_value(text)
        except ValueError as error:
            raise CsvInputError(f"line {line}: {error}") from None
        score = bank.step(value, ts)[0]
        writer.writerow((stamp, text, f"{score:.6f}"))
        count += 1
    return count
