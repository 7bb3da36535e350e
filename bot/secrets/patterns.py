"""Catalogue of the secret formats keybot recognises.

Every format is anchored on a literal family prefix (``sk-proj-``, ``AKIA``...) and describes the *whole*
secret: matching is done by cutting text into maximal runs of ``[A-Za-z0-9_-]`` and full-matching each run
against :data:`COMBINED`, so a secret is never matched as a fragment of a longer token and the engine never
needs unbounded look-around or backtracking.

Order matters: the first format that full-matches a run wins, so specific formats come before generic ones
(``sk-proj-`` and ``sk-ant-`` before the catch-all OpenAI ``sk-`` format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CHARSET",
    "COMBINED",
    "FORMATS",
    "OPENAI_MARKER",
    "SecretFormat",
    "format_for",
]

#: Characters a secret is made of; they also delimit secrets (a secret must not touch one of them).
CHARSET = "A-Za-z0-9_-"

#: base64("OpenAI"): present in every current OpenAI key; requiring it keeps ``sk-`` prose words unmatched.
OPENAI_MARKER = "T3BlbkFJ"

_TOK = f"[{CHARSET}]"
_ALNUM = "[A-Za-z0-9]"


def _marked_body(min_side: int, max_len: int) -> str:
    """Body of ``[A-Za-z0-9_-]`` chars, at most ``max_len`` long, with the OpenAI marker not at either edge.

    Written as "lookahead for the marker, then a bounded run" rather than ``X{a,b}MARKER X{a,b}`` so that
    adversarial runs full of markers cost linear time instead of quadratic backtracking.
    """
    marker_inside = f"(?={_TOK}{{{min_side},}}?{OPENAI_MARKER}{_TOK}{{{min_side}}})"
    return f"{marker_inside}{_TOK}{{{2 * min_side + len(OPENAI_MARKER)},{max_len}}}"


# Project / service-account / admin keys: 74 + marker + 74 today (164 chars for sk-proj-), 58 + 58 for an
# older generation and 20 + 20 for the first sk-proj- keys. The range absorbs future length drift, which is
# exactly what fixed-length scanner rules miss.
_OPENAI_LONG_BODY = _marked_body(20, 250)


@dataclass(frozen=True)
class SecretFormat:
    """One recognisable secret format.

    ``pattern`` is the full regex for the secret, beginning with the escaped literal ``family`` so that the
    redacted form can always show the family without re-parsing the value.
    """

    kind: str
    provider: str
    family: str
    pattern: str

    @property
    def regex(self) -> re.Pattern[str]:
        """Compiled pattern for matching one whole secret value (used by tests and ad-hoc callers)."""
        return re.compile(self.pattern)


def _fmt(kind: str, provider: str, family: str, body: str) -> SecretFormat:
    """Build a format whose regex is the literal family followed by ``body``."""
    return SecretFormat(kind=kind, provider=provider, family=family, pattern=re.escape(family) + body)


FORMATS: tuple[SecretFormat, ...] = (
    # --- OpenAI: specific prefixes first -------------------------------------------------------------
    _fmt("openai_project", "openai", "sk-proj-", _OPENAI_LONG_BODY),
    _fmt("openai_service_account", "openai", "sk-svcacct-", _OPENAI_LONG_BODY),
    _fmt("openai_admin", "openai", "sk-admin-", _OPENAI_LONG_BODY),
    # --- Anthropic: must beat the generic OpenAI sk- formats below ------------------------------------
    _fmt("anthropic", "anthropic", "sk-ant-", f"(?:api|admin)[0-9]{{2}}-{_TOK}{{80,110}}AA"),
    # --- OpenAI legacy user keys: sk- + 20 + marker + 20 alphanumerics (51 chars) ----------------------
    _fmt("openai_legacy", "openai", "sk-", f"{_ALNUM}{{20}}{OPENAI_MARKER}{_ALNUM}{{20}}"),
    # --- OpenAI catch-all (e.g. sk-None-..., unexpected lengths): still requires the marker ------------
    _fmt("openai_other", "openai", "sk-", _marked_body(16, 330)),
    # --- AWS access key ids (long-term AKIA, temporary ASIA) ------------------------------------------
    *(_fmt("aws_access_key", "aws", fam, "[0-9A-Z]{16}") for fam in ("AKIA", "ASIA")),
    # --- GitHub -------------------------------------------------------------------------------------
    *(
        _fmt("github_token", "github", fam, f"{_ALNUM}{{36}}")
        for fam in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
    ),
    _fmt("github_token", "github", "github_pat_", "[A-Za-z0-9_]{82}"),
    # --- Slack: xox?-<numeric ids>-<secret>, and app-level xapp- tokens --------------------------------
    *(
        _fmt("slack_token", "slack", fam, f"[0-9]{{1,15}}(?:-[0-9]{{1,15}}){{0,3}}-{_ALNUM}{{16,64}}")
        for fam in ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-")
    ),
    _fmt("slack_token", "slack", "xapp-", f"[0-9]-[A-Z0-9]{{8,15}}-[0-9]{{8,15}}-{_ALNUM}{{32,80}}"),
    # --- Stripe live secret / restricted keys ---------------------------------------------------------
    *(_fmt("stripe_live", "stripe", fam, f"{_ALNUM}{{24,99}}") for fam in ("sk_live_", "rk_live_")),
    # --- Google API keys ----------------------------------------------------------------------------
    _fmt("google_api_key", "google", "AIza", f"{_TOK}{{35}}"),
)


def _group(index: int) -> str:
    return f"f{index}"


#: All formats as one alternation (first alternative wins); use with ``fullmatch`` on a whole token.
COMBINED: re.Pattern[str] = re.compile(
    "|".join(f"(?P<{_group(i)}>{fmt.pattern})" for i, fmt in enumerate(FORMATS))
)

_BY_GROUP: dict[str, SecretFormat] = {_group(i): fmt for i, fmt in enumerate(FORMATS)}


def format_for(match: re.Match[str]) -> SecretFormat:
    """Map a :data:`COMBINED` match back to the format that produced it."""
    group = match.lastgroup
    if group is None:  # pragma: no cover - every alternative is a named group
        raise ValueError("match did not come from COMBINED")
    return _BY_GROUP[group]
