"""Tests for bot.secrets: recognition and redaction of leaked API keys.

All key-shaped values are generated at run time (random characters in the right shape), so this file never
contains anything that a secret scanner would flag as a real credential.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.secrets import (
    FORMATS,
    SecretMatch,
    contains_secret,
    find_secrets,
    parse_redacted,
    redact,
    redact_obj,
    redacted_form,
)
from tests.test_secret_formats import FAMILIES, sample

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
UPPER_DIGITS = string.ascii_uppercase + string.digits
BASE32 = string.ascii_uppercase + "234567"  # AWS key ids
MARKER = "T3Blbk" + "FJ"  # base64("OpenAI"), split so the literal is obviously intentional


def _rand(rng: random.Random, n: int, alphabet: str = URLSAFE) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _openai(prefix: str, side: int, alphabet: str = URLSAFE) -> Callable[[random.Random], str]:
    return lambda rng: prefix + _rand(rng, side, alphabet) + MARKER + _rand(rng, side, alphabet)


def _prefixed(prefix: str, n: int, alphabet: str) -> Callable[[random.Random], str]:
    return lambda rng: prefix + _rand(rng, n, alphabet)


@dataclass(frozen=True)
class Spec:
    """How to generate one kind of fake key and what find_secrets should say about it."""

    name: str
    kind: str
    provider: str
    family: str
    length: int | None  # realistic total length, checked so the generators stay honest
    make: Callable[[random.Random], str]


SPECS: list[Spec] = [
    Spec("openai_project", "openai_project", "openai", "sk-proj-", 164, _openai("sk-proj-", 74)),
    Spec("openai_project_132", "openai_project", "openai", "sk-proj-", 132, _openai("sk-proj-", 58)),
    Spec("openai_project_56", "openai_project", "openai", "sk-proj-", 56, _openai("sk-proj-", 20)),
    Spec(
        "openai_svcacct", "openai_service_account", "openai", "sk-svcacct-", 167, _openai("sk-svcacct-", 74)
    ),
    Spec("openai_admin", "openai_admin", "openai", "sk-admin-", 165, _openai("sk-admin-", 74)),
    Spec("openai_admin_133", "openai_admin", "openai", "sk-admin-", 133, _openai("sk-admin-", 58)),
    Spec("openai_legacy", "openai_legacy", "openai", "sk-", 51, _openai("sk-", 20, ALNUM)),
    Spec("openai_none", "openai_other", "openai", "sk-", 164, _openai("sk-None-", 74)),
    Spec("aws_akia", "aws_access_key", "aws", "AKIA", 20, lambda r: "AKIA" + _rand(r, 16, BASE32)),
    Spec("aws_asia", "aws_access_key", "aws", "ASIA", 20, lambda r: "ASIA" + _rand(r, 16, BASE32)),
    *(
        Spec(f"github_{p}", "github_token", "github", f"{p}_", 40, _prefixed(f"{p}_", 36, ALNUM))
        for p in ("ghp", "gho", "ghu", "ghs", "ghr")
    ),
    Spec(
        "github_pat",
        "github_token",
        "github",
        "github_pat_",
        93,
        lambda r: "github_pat_" + _rand(r, 22, ALNUM) + "_" + _rand(r, 59, ALNUM),
    ),
    Spec(
        "slack_bot",
        "slack_token",
        "slack",
        "xoxb-",
        None,
        lambda r: f"xoxb-{_rand(r, 12, string.digits)}-{_rand(r, 13, string.digits)}-{_rand(r, 24, ALNUM)}",
    ),
    Spec(
        "slack_user",
        "slack_token",
        "slack",
        "xoxp-",
        None,
        lambda r: (
            "xoxp-"
            + "-".join(_rand(r, 12, string.digits) for _ in range(3))
            + "-"
            + _rand(r, 32, "0123456789abcdef")
        ),
    ),
    Spec(
        "slack_app",
        "slack_token",
        "slack",
        "xapp-",
        None,
        lambda r: (
            f"xapp-1-A{_rand(r, 10, UPPER_DIGITS)}-{_rand(r, 13, string.digits)}-"
            + _rand(r, 64, "0123456789abcdef")
        ),
    ),
    Spec("stripe_sk", "stripe_live", "stripe", "sk_live_", 107, lambda r: "sk_live_" + _rand(r, 99, ALNUM)),
    Spec(
        "stripe_rk_short", "stripe_live", "stripe", "rk_live_", 32, lambda r: "rk_live_" + _rand(r, 24, ALNUM)
    ),
    Spec(
        "anthropic_api",
        "anthropic",
        "anthropic",
        "sk-ant-",
        108,
        lambda r: "sk-ant-api03-" + _rand(r, 93) + "AA",
    ),
    Spec(
        "anthropic_admin",
        "anthropic",
        "anthropic",
        "sk-ant-",
        110,
        lambda r: "sk-ant-admin01-" + _rand(r, 93) + "AA",
    ),
    Spec("google", "google_api_key", "google", "AIza", 39, lambda r: "AIza" + _rand(r, 35)),
]
SPEC_IDS = [s.name for s in SPECS]
#: Families recognised even when glued to a preceding word (bot.secrets.patterns.GLUED_PREFIXES): the
#: distinctive prefixes, and a bare sk- followed within a key's length by OpenAI's marker.
GLUED = re.compile(r"github_pat_|sk-(?:proj|svcacct|admin|ant)-|sk-(?=[A-Za-z0-9_-]{16,330}T3BlbkFJ)")


def make_key(spec: Spec, seed: int = 0) -> str:
    key = spec.make(random.Random(f"{spec.name}:{seed}"))
    if spec.length is not None:
        assert len(key) == spec.length, (spec.name, len(key))
    return key


def assert_no_leak(output: str, key: str, family: str) -> None:
    """No 8-char window of the secret (beyond its public family prefix) may survive redaction."""
    body = key[len(family) :]
    for i in range(len(body) - 7):
        window = body[i : i + 8]
        assert window not in output, f"leaked {i=}"
    assert key not in output


CONTEXTS: list[Callable[[str], str]] = [
    lambda k: k,
    lambda k: f"my key is {k} please revoke it",
    lambda k: f"{k} was pushed to a public repo",
    lambda k: f"it leaked: {k}",
    lambda k: json.dumps({"api_key": k, "note": "rotated"}),
    lambda k: json.dumps({"outer": {"list": [1, k]}}, indent=2),
    lambda k: f"https://api.example.com/v1/things?key={k}&page=2",
    lambda k: f"https://api.example.com/v1/things?key={k}",
    lambda k: f"curl -H 'Authorization: Bearer {k}' https://api.example.com",
    lambda k: f"line one\nline two has {k}\nline three",
    lambda k: f"line one\r\n{k}\r\n",
    lambda k: f"\t{k}\t",
    lambda k: f"({k}).",
    lambda k: f"<{k}>",
    lambda k: f"`{k}`",
    lambda k: f"```\nOPENAI_API_KEY={k}\n```",
    lambda k: f"'{k}',",
    lambda k: f"key: {k};",
    lambda k: f"[{k}]",
    lambda k: f"*{k}*",
    lambda k: f'export TOKEN="{k}"',
    lambda k: f"clé={k}…",
]


# --------------------------------------------------------------------------------------------------------
# Recognition
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_each_format_recognised_as_whole_value(spec: Spec) -> None:
    key = make_key(spec)
    matches = find_secrets(key)
    assert len(matches) == 1
    m = matches[0]
    assert (m.kind, m.provider, m.family) == (spec.kind, spec.provider, spec.family)
    assert (m.start, m.end, m.value) == (0, len(key), key)
    assert m.last4 == key[-4:]
    assert m.redacted == f"{spec.family}...{key[-4:]}"
    assert contains_secret(key)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("context", range(len(CONTEXTS)))
def test_recognised_and_redacted_in_context(spec: Spec, context: int) -> None:
    key = make_key(spec, seed=context)
    text = CONTEXTS[context](key)
    matches = find_secrets(text)
    assert [m.value for m in matches] == [key]
    assert text[matches[0].start : matches[0].end] == key
    out = redact(text)
    assert f"[REDACTED {spec.family}...{key[-4:]}]" in out
    assert_no_leak(out, key, spec.family)
    # Everything around the key survives untouched.
    assert out == text.replace(key, f"[REDACTED {spec.family}...{key[-4:]}]")


def test_164_char_project_key_is_fully_redacted() -> None:
    """Scanners with fixed 48/56-char OpenAI rules redact a prefix and leave ~100 chars of tail behind."""
    key = make_key(SPECS[0])
    assert len(key) == 164 and key.startswith("sk-proj-")
    text = f"OPENAI_API_KEY={key}\n"
    out = redact(text)
    assert out == f"OPENAI_API_KEY=[REDACTED sk-proj-...{key[-4:]}]\n"
    assert key[56:] not in out and key[-20:-4] not in out
    assert_no_leak(out, key, "sk-proj-")


def test_multiple_secrets_sorted_non_overlapping() -> None:
    keys = [make_key(spec, seed=7) for spec in SPECS]
    text = " , ".join(keys)
    matches = find_secrets(text)
    assert [m.value for m in matches] == keys
    assert [m.kind for m in matches] == [s.kind for s in SPECS]
    starts = [m.start for m in matches]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))
    out = redact(text)
    for spec, key in zip(SPECS, keys, strict=True):
        assert_no_leak(out, key, spec.family)
    assert out.count("[REDACTED ") == len(keys)


def test_most_specific_format_wins() -> None:
    rng = random.Random(1)
    # An Anthropic key that happens to contain the OpenAI marker is still Anthropic.
    ant = "sk-ant-api03-" + _rand(rng, 40) + MARKER + _rand(rng, 45) + "AA"
    assert [m.kind for m in find_secrets(ant)] == ["anthropic"]
    # A project key is a project key, not the generic OpenAI catch-all.
    assert find_secrets(make_key(SPECS[0]))[0].kind == "openai_project"
    # Unexpected lengths still get caught as OpenAI (the point of not using fixed-length rules).
    odd = "sk-proj-" + _rand(rng, 90) + MARKER + _rand(rng, 70)
    assert find_secrets(odd)[0].provider == "openai"


def test_sk_words_in_prose_not_matched() -> None:
    rng = random.Random(2)
    texts = [
        "ask-me anything about sk-learn, it is risk-free; task-list and desk-top",
        "the sk- prefix is for OpenAI keys, sk-proj- for project keys",
        "sk-" + _rand(rng, 48, ALNUM),  # legacy shape but no marker
        "sk-proj-" + _rand(rng, 156),  # long, no marker
        "sk-svcacct-" + _rand(rng, 156),
        "sk-" + MARKER,  # marker but far too short
        "sk-proj-" + MARKER + _rand(rng, 60),  # marker at the very edge
        "sk_test_" + _rand(rng, 99, ALNUM),  # Stripe test keys are not incidents
    ]
    for text in texts:
        assert find_secrets(text) == [], text
        assert redact(text) == text
        assert not contains_secret(text)


def test_short_random_strings_not_matched() -> None:
    rng = random.Random(3)
    for n in range(1, 20):
        for _ in range(50):
            text = _rand(rng, n)
            assert not contains_secret(text), text
    assert not contains_secret("AKIA" + _rand(rng, 15, BASE32))
    assert not contains_secret("ghp_" + _rand(rng, 35, ALNUM))
    assert not contains_secret("AIza" + _rand(rng, 34))
    assert not contains_secret("")
    assert not contains_secret("plain prose, nothing to see: 0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize(
    "wrap",
    [
        lambda k: "x" + k,
        lambda k: k + "x",
        lambda k: "A" + k + "9",
        lambda k: "prefix-" + k,
        lambda k: "prefix_" + k,
        lambda k: k + "-suffix",
        lambda k: k + "_old",
        lambda k: k + k,
    ],
)
def test_key_inside_longer_token_not_partially_matched(spec: Spec, wrap: Callable[[str], str]) -> None:
    key = make_key(spec)
    text = f"see {wrap(key)} here"
    matches = find_secrets(text)
    token = wrap(key)
    if GLUED.match(key):  # a distinctive prefix, or a bare sk- followed by OpenAI's marker
        # A distinctive prefix glued to a word in front still starts a secret: the match runs from the
        # prefix to the end of the token, so no part of the key survives redaction.
        assert matches or not token.endswith(key), token
        for m in matches:
            assert token.endswith(m.value) and key in m.value
        return
    # Either nothing matches, or the match is the whole token; never a slice of it.
    for m in matches:
        assert m.value == token
    assert all(m.value != key for m in matches)


def test_escaped_separators_do_not_hide_a_key() -> None:
    """JSON/repr dumps (``\\n``) and URL-encoding (``%22``) glue letters onto a key; still find it."""
    key = make_key(SPECS[0], seed=11)
    cases = [
        json.dumps({"msg": f"first line\n{key}\nlast"}),  # contains backslash-n before the key
        repr(f"a\n{key}"),
        f"a\\t{key}",
        f"q=%22{key}%22",
        f"%2F{key}",
        f"\\u0022{key}\\u0022",
        f"\\x22{key}",
    ]
    for text in cases:
        assert [m.value for m in find_secrets(text)] == [key], text
        out = redact(text)
        assert_no_leak(out, key, "sk-proj-")
    # A letter in front of a distinctive prefix is a word glued to the key: still found (see GLUED).
    assert [m.value for m in find_secrets(f"n{key}")] == [key]
    # But an ordinary letter in front of a short prefix still blocks the match (no backslash / percent).
    token = make_key(next(s for s in SPECS if s.family == "ghp_"), seed=11)
    assert find_secrets(f"n{token}") == []


def test_redact_is_idempotent_and_output_not_rematched() -> None:
    text = " ".join(make_key(s, seed=5) for s in SPECS)
    once = redact(text)
    assert redact(once) == once
    assert find_secrets(once) == []


def test_redact_returns_same_object_when_nothing_found() -> None:
    text = "nothing secret here " * 10
    assert redact(text) is text


def test_secret_match_repr_hides_value() -> None:
    key = make_key(SPECS[0])
    m = find_secrets(key)[0]
    assert isinstance(m, SecretMatch)
    assert key not in repr(m) and key not in str(m)
    assert key[10:30] not in repr(m)


def test_catalogue_is_consistent() -> None:
    kinds = {f.kind for f in FORMATS}
    assert {
        "openai_project",
        "openai_service_account",
        "openai_admin",
        "openai_legacy",
        "aws_access_key",
        "github_token",
        "slack_token",
        "stripe_live",
        "anthropic",
        "google_api_key",
    } <= kinds
    for fmt in FORMATS:
        assert fmt.pattern.startswith(re.escape(fmt.family)), fmt
        assert fmt.regex.fullmatch(fmt.family) is None  # the family alone is never a secret


# --------------------------------------------------------------------------------------------------------
# redacted_form / parse_redacted
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_redacted_form_known_formats(spec: Spec) -> None:
    key = make_key(spec)
    assert redacted_form(key) == f"{spec.family}...{key[-4:]}"
    assert redacted_form(f"  {key}\n") == f"{spec.family}...{key[-4:]}"


def test_redacted_form_unknown_formats() -> None:
    assert redacted_form("abcdefghijklmnop") == "abc...mnop"
    assert redacted_form("abcdefghijkl") == "abc...ijkl"
    assert redacted_form("abcdefghijk") == "[REDACTED]"
    assert redacted_form("") == "[REDACTED]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sk-...Xy9Q", ("sk-", "Xy9Q")),
        ("sk-proj-...Xy9Q", ("sk-proj-", "Xy9Q")),
        ("sk-abc…Xy9Q", ("sk-abc", "Xy9Q")),
        ("sk-proj-****Xy9Q", ("sk-proj-", "Xy9Q")),
        ("  sk-svcacct-...ab_-9  ", ("sk-svcacct-", "ab_-9")),
        ("`sk-...Xy9Q`", ("sk-", "Xy9Q")),
        ('"AKIA...WXYZ"', ("AKIA", "WXYZ")),
        ("[REDACTED sk-proj-...Xy9Q]", ("sk-proj-", "Xy9Q")),
        ("sk-....Xy9Q", ("sk-", "Xy9Q")),
        ("sk-...Xy9", None),  # suffix too short
        ("sk-Xy9Q", None),  # no ellipsis
        ("...Xy9Q", None),  # no prefix
        ("sk-...Xy9Q please", None),  # not just the redacted key
        ("sk-.Xy9Q", None),
        ("sk-...Xy9Q!", None),
        ("", None),
        ("hello world", None),
    ],
)
def test_parse_redacted(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_redacted(text) == expected


def test_parse_redacted_round_trips_our_own_output() -> None:
    for spec in SPECS:
        key = make_key(spec)
        assert parse_redacted(redacted_form(key)) == (spec.family, key[-4:])
        assert parse_redacted(redact(key)) == (spec.family, key[-4:])


# --------------------------------------------------------------------------------------------------------
# redact_obj
# --------------------------------------------------------------------------------------------------------


def test_redact_obj_nested_structures() -> None:
    k1, k2, k3, k4, k5 = (
        make_key(spec, seed=9) for spec in (SPECS[0], SPECS[8], SPECS[10], SPECS[-1], SPECS[6])
    )
    Point = namedtuple("Point", ["x", "y"])
    event = {
        "event": f"revoking {k1}",
        "count": 3,
        "ok": True,
        "none": None,
        "ratio": 0.5,
        "nested": {"list": [k2, {"deeper": (k3, "fine")}], "set": {k4}},
        "bytes": f"raw {k5}".encode(),
        "point": Point(k1, 2),
        "ordered": OrderedDict([("a", k2)]),
        k3: "secret as a key",
    }
    original = json.dumps(event, default=repr)
    out = redact_obj(event)
    dumped = repr(out)
    for key in (k1, k2, k3, k4, k5):
        assert key not in dumped
        assert key[8:24] not in dumped
    assert out["count"] == 3 and out["ok"] is True and out["none"] is None and out["ratio"] == 0.5
    assert out["event"] == f"revoking [REDACTED sk-proj-...{k1[-4:]}]"
    assert isinstance(out["nested"]["list"][1]["deeper"], tuple)
    assert out["nested"]["list"][1]["deeper"][1] == "fine"
    assert isinstance(out["nested"]["set"], set)
    assert isinstance(out["bytes"], bytes) and out["bytes"].startswith(b"raw [REDACTED sk-...")
    assert isinstance(out["point"], Point) and out["point"].y == 2
    assert isinstance(out["ordered"], OrderedDict)
    assert "secret as a key" in out.values()
    # The input is not mutated.
    assert json.dumps(event, default=repr) == original


def test_redact_obj_passthrough_and_edge_cases() -> None:
    marker = object()
    assert redact_obj(marker) is marker
    assert redact_obj(42) == 42
    assert redact_obj("plain") == "plain"
    assert redact_obj(b"\xff\xfe not utf8") == b"\xff\xfe not utf8"
    cyclic: list[object] = ["x"]
    cyclic.append(cyclic)
    assert redact_obj(cyclic) == ["x", "[cycle]"]


# --------------------------------------------------------------------------------------------------------
# Property test
# --------------------------------------------------------------------------------------------------------

# Characters that may sit right next to a secret (anything outside [A-Za-z0-9_-]).
SEPARATORS = [*" \n\t\"'(),;:=&?/<>[]{}|*`!.", "é", "\u00a0", "。"]


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    seed=st.integers(min_value=0, max_value=2**32),
    before=st.text(max_size=200),
    after=st.text(max_size=200),
    sep1=st.sampled_from(SEPARATORS),
    sep2=st.sampled_from(SEPARATORS),
)
def test_property_inserted_key_never_survives(
    spec: Spec, seed: int, before: str, after: str, sep1: str, sep2: str
) -> None:
    key = make_key(spec, seed)
    text = before + sep1 + key + sep2 + after
    out = redact(text)
    middle = key[len(spec.family) : -4]
    assert middle not in out
    assert_no_leak(out, key, spec.family)
    assert key in [m.value for m in find_secrets(text)]
    assert contains_secret(text)


# The joined prefilter in redact_obj must never skip a string that redact() alone would change (samples of
# every family in tests/test_secret_formats.py, dotted ones included).
_PIECES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["\\n", "\\x41", "%22", "\\u0041", "\\", "%", "ghs_", "xoxe.", "-", "_", "\x00", "tok"]),
    st.builds(make_key, st.sampled_from(SPECS), st.integers(min_value=0, max_value=2**16)),
    st.sampled_from(["github_pat_", "sk-proj-", "xoxb-", "AKIA"]),
    st.builds(sample, st.sampled_from(sorted(FAMILIES)), st.integers(min_value=0, max_value=2**16)),
)
_STRINGS = st.lists(_PIECES, max_size=6).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(_STRINGS, max_size=8), st.lists(_STRINGS, max_size=3))
def test_property_redact_obj_equals_redacting_each_string(texts: list[str], keys: list[str]) -> None:
    raw = "".join(texts).encode()
    payload = {"texts": texts, "nested": [{k: k for k in keys}, tuple(texts[:2])], "raw": raw}
    expected = {
        "texts": [redact(t) for t in texts],
        "nested": [{redact(k): redact(k) for k in keys}, tuple(redact(t) for t in texts[:2])],
        "raw": redact("".join(texts)).encode(),
    }
    assert redact_obj(payload) == expected


def test_redact_obj_finds_a_secret_split_from_its_neighbours_only_by_the_join() -> None:
    key = make_key(SPECS[0], seed=3)
    # Each piece alone is harmless prose; the secret is whole in one string and must still be redacted.
    out = redact_obj(["sk-proj-", key, "x" * 30])
    assert key not in repr(out) and out[0] == "sk-proj-" and out[2] == "x" * 30
