"""Blaming language in text a person or the LLM adds to a postmortem: flagged, never rewritten.

A blameless postmortem asks what in the system let this happen, not who failed. The check is a list of
phrases matched on word boundaries, case-insensitively; the draft carries a warning naming what it found.
"""

from __future__ import annotations

import re

PHRASES = (
    r"should(?:\s+not)? have",
    r"shouldn'?t have",
    r"failed to",
    r"fail(?:ed|s)? to (?:follow|notice|check)",
    r"careless(?:ly|ness)?",
    r"negligen(?:t|ce|tly)",
    r"(?:[\w.@-]+'s|his|her|their|your) fault",
    r"fault of",
    r"to blame",
    r"blam(?:e|ed|es|ing)",
    r"mistake (?:by|of|made by)",
    r"(?:did ?n[o']?t|never) bother(?:ed)?",
    r"human error",
    r"incompeten(?:t|ce)",
    r"sloppy",
    r"stupid",
    r"screwed up",
    r"messed up",
    r"dropped the ball",
    r"(?:forgot|neglected|ignored) to",
)
PATTERN = re.compile(r"(?<![\w'])(?:" + "|".join(PHRASES) + r")(?![\w'])", re.IGNORECASE)
MAX_SCAN = 100_000


def blaming_phrases(text: str) -> list[str]:
    """Each blaming phrase found, as written, in order and once each (case-insensitively)."""
    found: list[str] = []
    seen: set[str] = set()
    normalised = text[:MAX_SCAN].replace("\u2019", "'")
    for match in PATTERN.finditer(normalised):
        phrase = " ".join(match.group(0).split())
        if phrase.lower() not in seen:
            seen.add(phrase.lower())
            found.append(phrase)
    return found
