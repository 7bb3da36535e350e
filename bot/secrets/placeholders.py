"""Tell format-valid placeholders and documentation examples apart from real, randomly generated secrets.

A real key's body is drawn at random by its vendor, so it has no long runs of one character, no long
ascending or descending sequences, no short repeating unit, no English placeholder words, and an entropy
close to that of its alphabet. Every threshold below is set so that a random body of any recognised family
trips it with a probability of about one in a million or less (tests draw thousands of random samples per
family), while the placeholders people actually write (``ghp_xxxx…``, ``sk_live_AAAA…``, ``xoxb-0000…``,
``abcdef123456``, ``…EXAMPLE``, ``your_key_here``) trip at least one. Only judged after a candidate
already matched a vendor format, so this never runs on ordinary prose.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

from bot.secrets.patterns import OPENAI_MARKER

__all__ = ["KNOWN_EXAMPLES", "is_placeholder", "shannon_entropy"]

#: Example keys printed in vendors' own documentation and SDK fixtures: well known, never live.
KNOWN_EXAMPLES: frozenset[str] = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",  # AWS documentation
        "ASIAIOSFODNN7EXAMPLE",  # AWS documentation (temporary credentials)
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",  # GitHub REST API documentation
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghr_16C7e42F292c6912E7710c838347Ae178B4a",
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",  # Slack oauth.v2.access documentation
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",  # Google Maps documentation
    }
)

#: Words people type into placeholders. Matched case-insensitively when 6+ letters long (a random body
#: contains one with odds far below one in a million); the shorter ``dummy`` only in the three usual cases.
_WORDS = re.compile(
    r"(?i:example|sample|placeholder|your[_-]?(?:api[_-]?)?(?:key|token|secret)|changeme|replace[_-]?me"
    r"|redacted|not[_-]?a?[_-]?real|insert[_-]?(?:key|token|here))|dummy|DUMMY|Dummy"
)
#: A body trips a check only with a probability below this when drawn at random (per check and key).
_ODDS = 1e-8
#: Entropy (bits per character) below this fraction of the most the body's length and alphabet allow.
_ENTROPY_FRACTION = 0.5
#: Shorter bodies (a legacy Slack token's 8 hex digits) vary too much by chance to be judged by entropy or
#: sequences: they are reported, since a missed key costs more than a false alarm.
_MIN_JUDGED = 12
_HEX = frozenset("0123456789abcdef")
_HEX_UPPER = frozenset("0123456789ABCDEF")


def shannon_entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character (0 for empty or one-symbol text)."""
    if not text:
        return 0.0
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def is_placeholder(value: str, family: str) -> bool:
    """True when a format-valid ``value`` is a documentation example or a typed placeholder, not a secret."""
    if value in KNOWN_EXAMPLES or _WORDS.search(value):
        return True
    body = _random_part(value, family)
    if len(body) < 6:
        return False
    size = _alphabet_size(body)
    run_limit = 2 + int(math.log(len(body) / _ODDS) / math.log(size))
    if _longest_run(body) >= run_limit or _repeats_a_short_unit(body):
        return True
    if len(body) < _MIN_JUDGED:
        return False
    stutters = sum(1 for previous, current in itertools.pairwise(body) if previous == current)
    return (
        _in_sequences(body) * 2 >= len(body)  # abcdef123456...
        or stutters * 2 >= len(body)  # aaaabbbbcccc...
        or shannon_entropy(body) < _ENTROPY_FRACTION * math.log2(min(len(body), size))
    )


def _random_part(value: str, family: str) -> str:
    """The part a vendor draws at random: no family prefix, no OpenAI marker, no Slack numeric ids."""
    body = value[len(family) :] if value.startswith(family) else value
    if family.startswith(("xox", "xapp-")):
        return body.rsplit("-", 1)[-1]
    return body.replace(OPENAI_MARKER, "", 1)


def _longest_run(body: str) -> int:
    best = run = 1
    for previous, current in itertools.pairwise(body):
        run = run + 1 if current == previous else 1
        best = max(best, run)
    return best


def _in_sequences(body: str) -> int:
    """How many characters sit in runs of 3+ stepping by +1 or by -1 (``abcdef``, ``123456``, ``zyx``)."""
    covered: set[int] = set()
    for step in (1, -1):
        start = 0
        for i in range(1, len(body) + 1):
            if i < len(body) and ord(body[i]) - ord(body[i - 1]) == step:
                continue
            if i - start >= 3:
                covered.update(range(start, i))
            start = i
    return len(covered)


def _repeats_a_short_unit(body: str) -> bool:
    """``abcabcabc…`` or ``a1b2a1b2…``: the body is a unit of at most a quarter of its length, repeated."""
    return any(body[period:] == body[:-period] for period in range(1, len(body) // 4 + 1))


def _alphabet_size(body: str) -> int:
    """Size of the alphabet the body seems drawn from, from the character classes it uses."""
    chars = set(body)
    if chars <= set("0123456789"):
        return 10
    if chars <= _HEX or chars <= _HEX_UPPER:
        return 16
    size = sum(
        n for n, present in ((26, chars & _LOWER), (26, chars & _UPPER), (10, chars & _DIGITS)) if present
    )
    return max(size + len(chars & set("_-.")), 2)


_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
