"""Catalogue of the secret formats keybot recognises.

Every format is anchored on a literal family prefix (``sk-proj-``, ``AKIA``...) and describes the *whole*
secret: matching is done by cutting text into maximal runs of ``[A-Za-z0-9_-]`` and full-matching each run
against :data:`COMBINED`, so a secret is never matched as a fragment of a longer token and the engine never
needs unbounded look-around or backtracking.

Two exceptions: a few distinctive prefixes (:data:`GLUED_PREFIXES`, e.g. ``github_pat_``) are also found
glued to a preceding word (``tokengithub_pat_...``), matched from the prefix to the end of the run; and
formats whose secret holds a dot (a GitHub installation token's JWT, Slack's ``xoxe.xoxp-``) are searched
for with :data:`DOTTED`, only in texts holding one of :data:`DOTTED_HINTS`.

Order matters: the first format that full-matches a run wins, so specific formats come before generic ones
(``sk-proj-`` and ``sk-ant-`` before the catch-all OpenAI ``sk-`` format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CHARSET",
    "COMBINED",
    "DOTTED",
    "DOTTED_HINTS",
    "FIRST_CHARS",
    "FORMATS",
    "GLUED_PREFIXES",
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


_SLACK_IDS = "[0-9]{1,15}"

FORMATS: tuple[SecretFormat, ...] = (
    # --- OpenAI: specific prefixes first -------------------------------------------------------------
    _fmt("openai_project", "openai", "sk-proj-", _OPENAI_LONG_BODY),
    _fmt("openai_service_account", "openai", "sk-svcacct-", _OPENAI_LONG_BODY),
    _fmt("openai_admin", "openai", "sk-admin-", _OPENAI_LONG_BODY),
    # --- Anthropic (API, Admin API, OAuth access/refresh): must beat the generic OpenAI sk- formats ------
    _fmt("anthropic", "anthropic", "sk-ant-", f"(?:api|admin|oat|ort)[0-9]{{2}}-{_TOK}{{80,110}}AA"),
    # --- OpenAI legacy user keys: sk- + 20 + marker + 20 alphanumerics (51 chars) ----------------------
    _fmt("openai_legacy", "openai", "sk-", f"{_ALNUM}{{20}}{OPENAI_MARKER}{_ALNUM}{{20}}"),
    # --- OpenAI catch-all (e.g. sk-None-..., unexpected lengths): still requires the marker ------------
    _fmt("openai_other", "openai", "sk-", _marked_body(16, 330)),
    # --- AWS access key ids: 4-letter kind + 16 base32 characters (A-Z, 2-7). AKIA long-term, ASIA
    # temporary (STS), ABIA STS service bearer, ACCA context-specific credentials ---------------------
    *(_fmt("aws_access_key", "aws", fam, "[A-Z2-7]{16}") for fam in ("AKIA", "ASIA", "ABIA", "ACCA")),
    # --- GitHub: ghp_ classic PAT, gho_ OAuth, ghu_ user-to-server, ghs_ installation, ghr_ refresh:
    # 36 alphanumerics today (30 random + 6 checksum); GitHub reserves the right to grow them ------------
    *(
        _fmt("github_token", "github", fam, f"{_ALNUM}{{36,251}}")
        for fam in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
    ),
    # Fine-grained PAT: github_pat_ + 22 alphanumerics (id) + _ + 59 alphanumerics (secret + checksum).
    _fmt("github_token", "github", "github_pat_", f"{_ALNUM}{{22}}_{_ALNUM}{{59}}"),
    # Stateless installation tokens (rolled out from April 2026): ghs_<app id>_<JWT>, ~520 characters.
    # The JWT's dots end a run, so these are found by :data:`DOTTED`, not by the run cutter.
    _fmt(
        "github_token",
        "github",
        "ghs_",
        f"[0-9]{{1,20}}_eyJ{_TOK}{{8,2000}}\\.eyJ{_TOK}{{8,4000}}\\.{_TOK}{{16,2000}}",
    ),
    # --- Slack: xox?-<numeric ids>-<secret> (bot, user, workspace, refresh, legacy, rotating xoxe-) ----
    *(
        _fmt(
            "slack_token",
            "slack",
            fam,
            # Current tokens end in 24-32 alphanumerics (a rotating xoxe- refresh token in ~146); legacy
            # tokens (xoxs-/xoxo-/xoxp- from before 2016) end in a short hex segment after three ids.
            f"(?:{_SLACK_IDS}(?:-{_SLACK_IDS}){{0,3}}-{_ALNUM}{{16,180}}"
            f"|{_SLACK_IDS}-{_SLACK_IDS}-{_SLACK_IDS}-[0-9a-fA-F]{{6,15}})",
        )
        for fam in ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxo-", "xoxe-")
    ),
    _fmt("slack_token", "slack", "xapp-", f"[0-9]-[A-Z0-9]{{8,15}}-[0-9]{{8,15}}-{_ALNUM}{{32,80}}"),
    # App configuration access tokens: xoxe.xoxp-1-<~165 alphanumerics> (found by :data:`DOTTED`).
    *(
        _fmt("slack_token", "slack", fam, f"[0-9]-{_ALNUM}{{150,180}}")
        for fam in ("xoxe.xoxp-", "xoxe.xoxb-")
    ),
    # --- Stripe live secret / restricted keys ---------------------------------------------------------
    *(_fmt("stripe_live", "stripe", fam, f"{_ALNUM}{{24,99}}") for fam in ("sk_live_", "rk_live_")),
    # --- Google API keys ----------------------------------------------------------------------------
    _fmt("google_api_key", "google", "AIza", f"{_TOK}{{35}}"),
)

#: Families whose prefix is distinctive enough to be recognised glued to a preceding word
#: (``tokengithub_pat_...``, ``nsk-proj-...``): no word or identifier ends in these by chance. A bare
#: ``sk-`` qualifies only when OpenAI's marker follows within a key's length (``pay-prod-sk-…T3BlbkFJ…``).
GLUED_PREFIXES: re.Pattern[str] = re.compile(
    rf"github_pat_|sk-(?:proj|svcacct|admin|ant)-|sk-(?=[A-Za-z0-9_-]{{16,330}}{OPENAI_MARKER})"
)


def _group(index: int) -> str:
    return f"f{index}"


#: All formats without a dot as one alternation (first alternative wins); use with ``fullmatch`` on a whole
#: run of :data:`CHARSET` characters. ``FIRST_CHARS``: a run starting with any other character cannot match.
COMBINED: re.Pattern[str] = re.compile(
    "|".join(f"(?P<{_group(i)}>{fmt.pattern})" for i, fmt in enumerate(FORMATS) if "\\." not in fmt.pattern)
)
FIRST_CHARS: frozenset[str] = frozenset(fmt.family[0] for fmt in FORMATS)

_BY_GROUP: dict[str, SecretFormat] = {_group(i): fmt for i, fmt in enumerate(FORMATS)}

#: The formats whose secret holds a dot (a JWT, ``xoxe.xoxp-``), searched for in the whole text with
#: word boundaries; ``DOTTED_HINTS`` are cheap substring tests that skip the search on nearly every text.
_DOTTED = [(i, fmt) for i, fmt in enumerate(FORMATS) if "\\." in fmt.pattern]
DOTTED_HINTS: tuple[str, ...] = ("ghs_", "xoxe.")
DOTTED: re.Pattern[str] = re.compile(
    f"(?<![.{CHARSET}])(?:"
    + "|".join(f"(?P<{_group(i)}>{fmt.pattern})" for i, fmt in _DOTTED)
    + f")(?![{CHARSET}])"
)


def format_for(match: re.Match[str]) -> SecretFormat:
    """Map a :data:`COMBINED` match back to the format that produced it."""
    group = match.lastgroup
    if group is None:  # pragma: no cover - every alternative is a named group
        raise ValueError("match did not come from COMBINED")
    return _BY_GROUP[group]
