"""Registry at scale: import 100,000 keys, then lookup latency for each form people type."""

from __future__ import annotations

import os
import random
import secrets
import string
import tempfile
import time
from pathlib import Path

from bench.common import database_targets, figure, percentile
from bot.db.migrate import ensure_schema
from bot.db.session import Database
from bot.registry.fingerprint import Fingerprinter
from bot.registry.importer import parse_file
from bot.registry.service import lookup
from bot.registry.store import apply_import

KEYS = int(os.environ.get("BENCH_REGISTRY_KEYS", "100000"))
LOOKUPS = int(os.environ.get("BENCH_LOOKUPS", "2000"))
ALPHABET = string.ascii_letters + string.digits + "_-"


def _fake_key() -> str:
    body = "".join(random.choices(ALPHABET, k=156))
    return "sk-proj-" + body[:74] + "T3BlbkFJ" + body[82:]


def write_registry(path: Path, count: int) -> list[tuple[str, str, str, str]]:
    """A CSV registry of `count` keys; returns (name, provider id, redacted, secret) per key."""
    rows = [
        "name,provider,provider_key_id,environment,secret,team,team_channel,owners,backups,consumers,rotation_days"
    ]
    facts = []
    for i in range(count):
        secret = _fake_key()
        provider_id = f"key_{secrets.token_hex(8)}"
        team = f"team-{i % 200}"
        rows.append(
            f"svc-{i:06d}-openai,openai,{provider_id},{random.choice(['production', 'staging'])},{secret},"
            f"{team},#{team},U0{i % 5000:07d},U1{i % 3000:07d},api-{i};worker-{i},90"
        )
        facts.append((f"svc-{i:06d}-openai", provider_id, f"sk-proj-...{secret[-4:]}", secret))
    path.write_text("\n".join(rows) + "\n")
    return facts


def run() -> None:
    fingerprinter = Fingerprinter(b"bench-fingerprint-key-0123456789abcdef")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "registry.csv"
        facts = write_registry(source, KEYS)
        for dialect, url in database_targets("registry"):
            database = Database(url)
            ensure_schema(database.engine)
            started = time.perf_counter()
            parsed = parse_file(source)
            with database.session() as session:
                apply_import(session, parsed, fingerprinter)
            figure(f"registry.import_{KEYS}_keys.{dialect}", time.perf_counter() - started, "s")
            sample = random.sample(facts, min(LOOKUPS, len(facts)))
            forms = {
                "name": lambda f: f[0],
                "provider_id": lambda f: f[1],
                "redacted": lambda f: f[2],
                "secret": lambda f: f[3],
                "keybot_id": lambda f: f"#{int(f[0][4:10]) + 1}",
            }
            for form, query_of in forms.items():
                timings = []
                with database.session() as session:
                    for fact in sample:
                        started = time.perf_counter()
                        result = lookup(session, query_of(fact), fingerprinter)
                        timings.append((time.perf_counter() - started) * 1000)
                        assert result.matches, (form, fact[0])
                figure(f"registry.lookup_{form}.{dialect}.p50", percentile(timings, 50), "ms")
                figure(f"registry.lookup_{form}.{dialect}.p99", percentile(timings, 99), "ms")
            database.dispose()
