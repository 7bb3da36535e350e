"""Ingest lines (JSON lines or CSV rows) → validated `UsageLine`s, with a per-line error report.

One line: `{"key", "ts", "requests", "input_tokens", "output_tokens" | "tokens", "cost", "status",
"source_ip", "model"}`. `key` and `ts` are required, the rest default to nothing. `ts` is ISO 8601 (naive
means UTC) or unix seconds (milliseconds above 1e12). `tokens` is a total, counted as input tokens, and
only allowed without `input_tokens`/`output_tokens`. Unknown fields are refused rather than dropped, so a
misspelt counter is noticed. Bad lines never stop good ones; errors never repeat a secret.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.secrets import contains_secret, redact
from bot.usage.resolve import KeyResolver, Unresolved
from bot.usage.types import UsageLine, floor_minute

MAX_COUNT = 10**12
MAX_COST = 1e7
MAX_STATUS_CODES = 32
MAX_MODEL = 64
MAX_ERRORS = 100
TS_CACHE = 100_000
FUTURE = timedelta(minutes=5)
PAST = timedelta(days=400)
FIELDS = frozenset(
    (
        "key",
        "ts",
        "requests",
        "input_tokens",
        "output_tokens",
        "tokens",
        "cost",
        "status",
        "source_ip",
        "model",
    )
)


_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


class LineError(ValueError):
    """Why one line was rejected; safe to send back."""


@dataclass
class Report:
    """Accepted lines and the first `MAX_ERRORS` rejections (`line` is 1-based)."""

    lines: list[UsageLine] = field(default_factory=list)
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, number: int, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": number, "error": redact(message)})

    def as_json(self, accepted: int | None = None) -> dict[str, Any]:
        return {
            "accepted": len(self.lines) if accepted is None else accepted,
            "rejected": self.rejected,
            "errors": self.errors,
        }


def _no_constants(name: str) -> float:
    raise LineError(f"{name} is not a number JSON allows")


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        return 0
    if type(value) is int:
        if 0 <= value <= MAX_COUNT:
            return value
    elif type(value) is float and value.is_integer() and 0 <= value <= MAX_COUNT:
        return int(value)
    elif type(value) is str:
        raise LineError(f"{name} must be a number, not a string")
    raise LineError(f"{name} must be a whole number between 0 and {MAX_COUNT}")


def _cost(value: Any) -> float:
    if value is None:
        return 0.0
    if type(value) in (int, float) and math.isfinite(value) and 0 <= value <= MAX_COST:
        return float(value)
    raise LineError(f"cost must be a finite number of USD between 0 and {MAX_COST:g}")


def parse_ts(value: Any, now: datetime) -> datetime:
    if type(value) in (int, float):
        if not math.isfinite(value):
            raise LineError("ts must be finite")
        seconds = value / 1000 if value > 1e12 else value
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise LineError("ts is out of range") from None
    elif type(value) is str and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise LineError("ts must be ISO 8601 (2026-03-04T10:15:00Z) or unix seconds") from None
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    else:
        raise LineError("ts must be ISO 8601 (2026-03-04T10:15:00Z) or unix seconds")
    if moment > now + FUTURE:
        raise LineError("ts is in the future")
    if moment < now - PAST:
        raise LineError(f"ts is more than {PAST.days} days old")
    return floor_minute(moment)


def _status(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_STATUS_CODES:
        raise LineError(f'status must be an object of at most {MAX_STATUS_CODES} codes like {{"200": 5}}')
    out: dict[str, int] = {}
    for code in value:
        if not (len(code) == 3 and code[0] in "12345" and (code[1:].isdigit() or code[1:] == "xx")):
            raise LineError("status codes must be three digits (or 5xx)")
        out[code] = _count(value, code)
    return out


def _ip(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str or len(value) > 64:
        raise LineError("source_ip must be an IPv4 or IPv6 address")
    return _address(value)


@functools.lru_cache(maxsize=65536)
def _address(value: str) -> str:
    """Parsed once per distinct text: a gateway's lines repeat a handful of addresses."""
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        raise LineError("source_ip must be an IPv4 or IPv6 address") from None


def _model(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise LineError(f"model must be printable text of 1 to {MAX_MODEL} characters")
    return _model_name(value)


@functools.lru_cache(maxsize=4096)
def _model_name(value: str) -> str:
    """Checked once per distinct name (the secret scan is the costly part)."""
    if not 0 < len(value) <= MAX_MODEL or not value.isprintable():
        raise LineError(f"model must be printable text of 1 to {MAX_MODEL} characters")
    if contains_secret(value):
        raise LineError("model looks like a secret")
    return value


def _field_name(name: str) -> str:
    """An unknown field's name as an error may show it: a misspelt counter, never a pasted secret."""
    if not _FIELD_NAME.fullmatch(name) or contains_secret(name):
        return "(a field name that is not a plain word)"
    return name


def to_line(obj: Any, resolver: KeyResolver, now: datetime) -> UsageLine:
    """One decoded line → a UsageLine, or LineError / Unresolved saying why not."""
    if type(obj) is not dict:
        raise LineError("a line must be a JSON object")
    if not obj.keys() <= FIELDS:
        unknown = sorted({_field_name(str(k)) for k in obj if k not in FIELDS})
        raise LineError(f"unknown field(s): {', '.join(unknown[:5])}")
    if "key" not in obj or "ts" not in obj:
        raise LineError("key and ts are required")
    if "tokens" in obj and ("input_tokens" in obj or "output_tokens" in obj):
        raise LineError("give tokens or input_tokens/output_tokens, not both")
    stamp = obj["ts"]
    cache = resolver.stamps
    minute = cache.get(stamp) if type(stamp) in (int, str) else None
    if minute is None:
        minute = parse_ts(stamp, now)
        if type(stamp) in (int, str) and len(cache) < TS_CACHE:
            cache[stamp] = minute
    key_id = resolver.resolve(obj["key"])
    return UsageLine(
        key_id=key_id,
        minute=minute,
        requests=_count(obj, "requests"),
        input_tokens=_count(obj, "tokens") if "tokens" in obj else _count(obj, "input_tokens"),
        output_tokens=_count(obj, "output_tokens"),
        cost_usd=_cost(obj.get("cost")),
        status=_status(obj.get("status")),
        source_ip=_ip(obj.get("source_ip")),
        model=_model(obj.get("model")),
    )


def _accept(report: Report, number: int, obj: Any, resolver: KeyResolver, now: datetime) -> None:
    try:
        report.lines.append(to_line(obj, resolver, now))
    except (LineError, Unresolved) as error:
        report.reject(number, str(error))


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_json_lines(
    lines: Iterable[bytes | str], resolver: KeyResolver, now: datetime, *, first_line: int = 1
) -> Report:
    """JSON lines (blank lines skipped, still counted for numbering)."""
    report = Report()
    decode = _DECODER.decode
    for number, raw in enumerate(lines, first_line):
        if not raw.strip():
            continue
        try:
            obj = decode(raw.decode() if isinstance(raw, bytes) else raw)
        except LineError as error:
            report.reject(number, str(error))
            continue
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            report.reject(number, "not valid JSON (UTF-8)")
            continue
        _accept(report, number, obj, resolver, now)
    return report


def _csv_value(name: str, text: str) -> Any:
    """CSV cells are text: counters and cost become numbers, `status` is JSON, empty is absent."""
    if text == "":
        return None
    if name in ("requests", "input_tokens", "output_tokens", "tokens", "cost"):
        try:
            number = float(text)
        except ValueError:
            raise LineError(f"{name} must be a number") from None
        return int(number) if number.is_integer() and name != "cost" else number
    if name == "ts":
        try:
            return float(text)
        except ValueError:
            return text
    if name == "status":
        try:
            return json.loads(text, parse_constant=_no_constants)
        except ValueError:
            raise LineError('status must be JSON like {"200": 5}') from None
    return text


def parse_csv(text: str, resolver: KeyResolver, now: datetime) -> Report:
    """CSV with a header naming the same fields as the JSON lines; line numbers count the header."""
    report = Report()
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        number = reader.line_num
        try:
            if None in row:
                raise LineError("more cells than header columns")
            obj = {k: v for k, cell in row.items() if (v := _csv_value(k, cell or "")) is not None}
        except LineError as error:
            report.reject(number, str(error))
            continue
        _accept(report, number, obj, resolver, now)
    return report


def split_lines(body: bytes) -> Iterator[bytes]:
    return iter(body.split(b"\n"))
