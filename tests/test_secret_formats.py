"""Recognition keeps up with vendors' current formats, and placeholders are not reported as secrets.

Issue 10, "What to build" 10: format-valid placeholders and documentation examples raised false alarms, and
GitHub's refresh and 2026 installation tokens, fine-grained tokens glued to a word and legacy Slack tokens
with short last segments slipped through. Every sample is generated at run time from a seeded RNG (or is a
vendor's published documentation example), so this file holds no real credential.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

import pytest

from bot.secrets import contains_secret, find_secrets, redact, redacted_form
from bot.secrets.placeholders import KNOWN_EXAMPLES, is_placeholder

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
BASE32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"
DIGITS = string.digits
MARKER = "T3Blbk" + "FJ"
Maker = Callable[[random.Random], str]


def _r(rng: random.Random, n: int, alphabet: str = URLSAFE) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def installation_token(rng: random.Random) -> str:
    """GitHub's stateless installation token: ghs_<app id>_<JWT> (header.payload.signature)."""
    header = _b64({"alg": "RS256", "typ": "JWT"})
    payload = _b64({"iss": "github", "app": rng.randrange(10**6), "inst": _r(rng, 24, ALNUM), "exp": 1})
    return f"ghs_{rng.randrange(1, 10**7)}_{header}.{payload}.{_r(rng, 342)}"


#: family -> (kind, generator of a real-looking sample, the redacted family shown)
FAMILIES: dict[str, tuple[str, Maker, str]] = {
    "openai_project": ("openai_project", lambda g: f"sk-proj-{_r(g, 74)}{MARKER}{_r(g, 74)}", "sk-proj-"),
    "openai_svcacct": (
        "openai_service_account",
        lambda g: f"sk-svcacct-{_r(g, 74)}{MARKER}{_r(g, 74)}",
        "sk-svcacct-",
    ),
    "openai_admin": ("openai_admin", lambda g: f"sk-admin-{_r(g, 74)}{MARKER}{_r(g, 74)}", "sk-admin-"),
    "openai_legacy": ("openai_legacy", lambda g: f"sk-{_r(g, 20, ALNUM)}{MARKER}{_r(g, 20, ALNUM)}", "sk-"),
    "anthropic_api": ("anthropic", lambda g: f"sk-ant-api03-{_r(g, 93)}AA", "sk-ant-"),
    "anthropic_oauth": ("anthropic", lambda g: f"sk-ant-oat01-{_r(g, 93)}AA", "sk-ant-"),
    "aws_akia": ("aws_access_key", lambda g: "AKIA" + _r(g, 16, BASE32), "AKIA"),
    "aws_asia": ("aws_access_key", lambda g: "ASIA" + _r(g, 16, BASE32), "ASIA"),
    "aws_abia": ("aws_access_key", lambda g: "ABIA" + _r(g, 16, BASE32), "ABIA"),
    "github_ghp": ("github_token", lambda g: "ghp_" + _r(g, 36, ALNUM), "ghp_"),
    "github_gho": ("github_token", lambda g: "gho_" + _r(g, 36, ALNUM), "gho_"),
    "github_ghu": ("github_token", lambda g: "ghu_" + _r(g, 36, ALNUM), "ghu_"),
    "github_ghs": ("github_token", lambda g: "ghs_" + _r(g, 36, ALNUM), "ghs_"),
    "github_refresh": ("github_token", lambda g: "ghr_" + _r(g, 36, ALNUM), "ghr_"),
    "github_pat": (
        "github_token",
        lambda g: f"github_pat_11{_r(g, 20, ALNUM)}_{_r(g, 59, ALNUM)}",
        "github_pat_",
    ),
    "github_installation_2026": ("github_token", installation_token, "ghs_"),
    "slack_bot": (
        "slack_token",
        lambda g: f"xoxb-{_r(g, 13, DIGITS)}-{_r(g, 13, DIGITS)}-{_r(g, 24, ALNUM)}",
        "xoxb-",
    ),
    "slack_user": (
        "slack_token",
        lambda g: f"xoxp-{_r(g, 12, DIGITS)}-{_r(g, 12, DIGITS)}-{_r(g, 12, DIGITS)}-{_r(g, 32, HEX)}",
        "xoxp-",
    ),
    "slack_legacy_short": (
        "slack_token",
        lambda g: f"xoxs-{_r(g, 10, DIGITS)}-{_r(g, 10, DIGITS)}-{_r(g, 10, DIGITS)}-{_r(g, 10, HEX)}",
        "xoxs-",
    ),
    "slack_legacy_8hex": (
        "slack_token",
        lambda g: f"xoxp-{_r(g, 4, DIGITS)}-{_r(g, 4, DIGITS)}-{_r(g, 4, DIGITS)}-{_r(g, 8, HEX)}",
        "xoxp-",
    ),
    "slack_legacy_xoxo": (
        "slack_token",
        lambda g: f"xoxo-{_r(g, 6, DIGITS)}-{_r(g, 6, DIGITS)}-{_r(g, 6, DIGITS)}-{_r(g, 18, HEX)}",
        "xoxo-",
    ),
    "slack_refresh_xoxe": ("slack_token", lambda g: f"xoxe-1-{_r(g, 146, ALNUM)}", "xoxe-"),
    "slack_config_token": ("slack_token", lambda g: f"xoxe.xoxp-1-{_r(g, 165, ALNUM)}", "xoxe.xoxp-"),
    "slack_app": (
        "slack_token",
        lambda g: f"xapp-1-A{_r(g, 10, BASE32)}-{_r(g, 13, DIGITS)}-{_r(g, 64, HEX)}",
        "xapp-",
    ),
    "stripe_live": ("stripe_live", lambda g: "sk_live_" + _r(g, 99, ALNUM), "sk_live_"),
    "stripe_restricted": ("stripe_live", lambda g: "rk_live_" + _r(g, 24, ALNUM), "rk_live_"),
    "google": ("google_api_key", lambda g: "AIza" + _r(g, 35), "AIza"),
}


def sample(name: str, seed: int = 0) -> str:
    return FAMILIES[name][1](random.Random(f"{name}:{seed}"))


@pytest.mark.parametrize("name", FAMILIES)
def test_real_looking_samples_of_every_family_are_found(name: str) -> None:
    kind, make, family = FAMILIES[name]
    for seed in range(300):
        key = make(random.Random(f"{name}:{seed}"))
        text = f'config:\n  token: "{key}".\n'
        found = find_secrets(text)
        assert [(m.kind, m.family, m.value) for m in found] == [(kind, family, key)], (seed, key)
        assert redact(text) == text.replace(key, f"[REDACTED {family}...{key[-4:]}]")
        assert redacted_form(key) == f"{family}...{key[-4:]}"


@pytest.mark.parametrize(
    "text",
    [
        "tokengithub_pat_11A1b2C3d4E5f6G7h8I9j0_short",  # far too short to be a fine-grained token
        "ghr_" + "a1B2" * 8,  # 32 characters: one short of any GitHub token
        "github_pat_" + "a1B2c3D4" * 10,  # no `_` between the id and the secret
        "ghs_12345_eyJhbGciOiJIUzI1NiJ9",  # app id but no JWT (one segment)
        "ghs_12345_notajwt.eyJabcdefgh.abcdefghijklmnopqrstu",  # first segment is not a JWT header
        "AKIA" + "QW8RT1YU0IOP9ASD",  # 0, 1, 8, 9 are outside AWS's base32 alphabet
        "xoxp-1234-5678-9012-ghijklmn",  # a legacy token's last segment is hexadecimal
        "xoxs-1234-5678-abc123",  # two ids only and a short tail
        "sk_test_" + "q8Wm3Zp1Lx7Vb2Nc5Rt9Yh4K",  # Stripe test keys are not incidents
        "sk-ant-api03-" + "Zq9" * 31,  # no trailing AA
    ],
)
def test_near_misses_are_not_secrets(text: str) -> None:
    assert find_secrets(text, placeholders=True) == []


def test_fine_grained_token_glued_to_a_word_or_assignment() -> None:
    key = sample("github_pat")
    for text in (f"token{key}", f"TOKEN={key}", f"export GH_TOKEN{key}", f"x_{key}"):
        assert [m.value for m in find_secrets(text)] == [key], text
        assert key[11:-4] not in redact(text)
    # A short prefix glued to a word is still a different token (e.g. an identifier ending in "ghp").
    assert find_secrets("xghp_" + sample("github_ghp")[4:]) == []


def test_installation_token_in_prose_and_next_to_a_plain_token() -> None:
    jwt_token, classic = sample("github_installation_2026", 1), sample("github_ghp", 1)
    text = f"GH_TOKEN={jwt_token}. Old one: {classic}\n"
    assert [(m.family, m.value) for m in find_secrets(text)] == [("ghs_", jwt_token), ("ghp_", classic)]
    out = redact(text)
    assert out == f"GH_TOKEN=[REDACTED ghs_...{jwt_token[-4:]}]. Old one: [REDACTED ghp_...{classic[-4:]}]\n"
    for part in jwt_token.split(".")[1:]:
        assert part[:-4] not in out


# --- placeholders --------------------------------------------------------------------------------------

PLACEHOLDERS = [
    "ghp_" + "x" * 36,
    "ghp_" + "X" * 36,
    "gho_" + "abcdef123456" * 3,
    "ghr_" + "0123456789" * 3 + "abcdef",
    "github_pat_" + "x" * 22 + "_" + "x" * 59,
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAIOSFODNN7EXAMPLE",
    "AKIA" + "X" * 16,
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "AKIA" + "AAAABBBBCCCCDDDD",
    "sk_live_" + "A" * 24,
    "sk_live_" + "0123456789" * 3,
    "rk_live_YourKeyHere" + "q8Wm3Zp1Lx7Vb",
    "sk_live_EXAMPLEKEY" + "q8Wm3Zp1Lx7Vb2Nc",
    "xoxb-0000000000-0000000000-" + "0" * 24,
    "xoxb-1234567890-1234567890-" + "x" * 24,
    "xoxp-0000-0000-0000-" + "ab" * 16,
    "sk-proj-" + "a" * 74 + MARKER + "a" * 74,
    "sk-proj-" + "your_api_key_here_" * 4 + MARKER + "y" * 30,
    "sk-ant-api03-" + "x" * 93 + "AA",
    "AIza" + "SyDUMMY" + "k" * 28,
    "ghp_" + "ab" * 18,
    "ghp_" + "aaaabbbbccccddddeeeeffffgggghhhhiiii",
    "ghp_dummy" + "q8Wm3Zp1Lx7Vb2Nc5Rt9Yh4Kj6Ds1Ab",
    *sorted(KNOWN_EXAMPLES),
]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholders_and_documentation_examples_are_not_reported(placeholder: str) -> None:
    text = f"API_KEY={placeholder}  # replace me\n"
    assert len(find_secrets(text, placeholders=True)) == 1, (
        "the format must match, or the test proves nothing"
    )
    assert find_secrets(text) == []
    # Guards and redaction still treat it as secret-shaped: erring there costs nothing.
    assert contains_secret(text) and placeholder not in redact(text)


@pytest.mark.parametrize("name", FAMILIES)
def test_random_samples_are_never_taken_for_placeholders(name: str) -> None:
    family = FAMILIES[name][2]
    for seed in range(2000):
        key = sample(name, seed)
        assert not is_placeholder(key, family), key


def test_a_real_key_next_to_a_placeholder_is_still_reported() -> None:
    key = sample("github_ghp", 3)
    found = find_secrets(f"example: ghp_{'x' * 36}\nreal: {key}\n")
    assert [m.value for m in found] == [key]
