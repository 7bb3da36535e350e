"""The optional LLM narrative of a postmortem draft, through the official ``openai`` SDK.

The LLM is a convenience, never a dependency: :func:`narrate` never raises. Without a key, or when the
call fails, times out or answers garbage, it returns no narrative and a one-line reason, and the draft is
rendered from the facts alone. What it sends is built in :mod:`bot.postmortems.prompt` (facts as data);
what comes back is treated as untrusted text: parsed as strict JSON, validated, capped, redacted, stripped
of Slack and Markdown control sequences, and rejected when it shows that an instruction hidden in the
incident data took over (links, broadcasts, "ignore previous instructions", a demand from the data echoed).
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bot.log import get_logger
from bot.postmortems.prompt import (
    ANSWER_LIMITS,
    ITEM_LIMIT,
    LIST_FIELDS,
    MAX_ITEMS,
    RESPONSE_FORMAT,
    TEXT_FIELDS,
    document_json,
    messages,
)
from bot.postmortems.types import Narrative, PostmortemFacts
from bot.secrets import redact

__all__ = ["NarrativeResult", "narrate"]

log = get_logger(__name__)

TEMPERATURE = 0.2
MAX_COMPLETION_TOKENS = 2000
_HARD_ITEMS = 50  # more than this is garbage; up to it, the list is cut to MAX_ITEMS


@dataclass(frozen=True)
class NarrativeResult:
    """The narrative, or None and why (no key, timeout, garbage, refused); warnings ride along a narrative."""

    narrative: Narrative | None
    problem: str | None
    warnings: tuple[str, ...] = ()


class Rejected(Exception):
    """The answer cannot be used; the message is one line without secrets."""


def narrate(
    facts: PostmortemFacts,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
) -> NarrativeResult:
    """Ask the LLM for the narrative sections; settings fill what is not given. Never raises."""
    try:
        api_key, base_url, model, timeout = _config(api_key, base_url, model, timeout)
    except Rejected as problem:
        return NarrativeResult(None, str(problem))
    if not api_key:
        return NarrativeResult(None, "no OPENAI_API_KEY")
    try:
        document = document_json(facts)
        content = _ask(messages(document), api_key=api_key, base_url=base_url, model=model, timeout=timeout)
        narrative, warnings = _check(content, document, model)
    except Rejected as problem:
        log.warning("postmortem_llm_failed", reference=facts.reference, problem=str(problem))
        return NarrativeResult(None, str(problem))
    except Exception as exc:  # never let the optional part break the draft
        log.warning("postmortem_llm_crashed", reference=facts.reference, error=type(exc).__name__)
        return NarrativeResult(None, f"the LLM narrative failed ({type(exc).__name__})")
    return NarrativeResult(narrative, None, warnings)


def _config(
    api_key: str | None, base_url: str | None, model: str | None, timeout: float | None
) -> tuple[str | None, str | None, str, float]:
    """Arguments first, then OPENAI_API_KEY / OPENAI_BASE_URL and KEYBOT_LLM_MODEL / _TIMEOUT_SECONDS."""
    from bot.config import get_settings
    from bot.postmortems.settings import postmortem_settings

    try:
        if api_key is None or base_url is None:
            settings = get_settings()
            if api_key is None and settings.openai_api_key is not None:
                api_key = settings.openai_api_key.get_secret_value()
            base_url = base_url or settings.openai_base_url
        if model is None or timeout is None:
            pm = postmortem_settings()
            model = model or pm.llm_model
            timeout = pm.llm_timeout_seconds if timeout is None else timeout
    except Exception as exc:
        raise Rejected(redact(f"LLM settings: {exc}").splitlines()[0][:300]) from None
    assert model is not None and timeout is not None
    if not (math.isfinite(timeout) and timeout > 0):
        raise Rejected("LLM settings: the timeout must be a positive number of seconds")
    return api_key, base_url, model, timeout


def _ask(
    sent: list[ChatCompletionMessageParam], *, api_key: str, base_url: str | None, model: str, timeout: float
) -> str:
    """One Chat Completions call with strict structured output; the answer's text, or Rejected."""
    client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=1)
    client.admin_api_key = None  # an OPENAI_ADMIN_KEY in the environment never travels with this client
    try:
        with client:
            completion = client.chat.completions.create(
                model=model,
                messages=sent,
                response_format=RESPONSE_FORMAT,
                temperature=TEMPERATURE,
                max_completion_tokens=MAX_COMPLETION_TOKENS,
            )
    except openai.OpenAIError as exc:
        raise Rejected(_sdk_problem(exc, timeout, base_url)) from None
    if not completion.choices:
        raise Rejected("the LLM answer is empty")
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise Rejected("the LLM answer was cut off (finish_reason length)")
    if choice.finish_reason == "content_filter":
        raise Rejected("the LLM answer was withheld by its content filter")
    if choice.message.refusal:
        raise Rejected("the LLM refused to write the narrative")
    if choice.finish_reason in ("tool_calls", "function_call") or not choice.message.content:
        raise Rejected("the LLM answer is empty")
    return str(choice.message.content)


def _sdk_problem(exc: openai.OpenAIError, timeout: float, base_url: str | None) -> str:
    """One line from the exception's class, status and code: never its text, which may echo input."""
    if isinstance(exc, openai.APITimeoutError):
        return f"the LLM timed out after {timeout:g} s"
    if isinstance(exc, openai.APIConnectionError):
        where = urlsplit(base_url).hostname if base_url else None
        return f"cannot reach the LLM{f' at {where}' if where else ''}"
    if isinstance(exc, openai.AuthenticationError):
        return "the LLM rejected OPENAI_API_KEY (HTTP 401)"
    if isinstance(exc, openai.RateLimitError):
        return "the LLM is rate-limited (HTTP 429)"
    if isinstance(exc, openai.APIStatusError):
        code = exc.code if isinstance(exc.code, str) and re.fullmatch(r"[\w.-]{1,64}", exc.code) else None
        return f"the LLM answered HTTP {exc.status_code}{f' ({code})' if code else ''}"
    return f"the LLM call failed ({type(exc).__name__})"


# ---- the answer ---------------------------------------------------------------------------------------

_Item = Annotated[str, StringConstraints(max_length=2 * ITEM_LIMIT)]


class _Answer(BaseModel):
    """Exactly the schema's fields, exact JSON types; twice the asked-for lengths at most."""

    model_config = ConfigDict(extra="forbid", strict=True)

    summary: str = Field(max_length=2 * ANSWER_LIMITS["summary"])
    impact: str = Field(max_length=2 * ANSWER_LIMITS["impact"])
    root_cause: str = Field(max_length=2 * ANSWER_LIMITS["root_cause"])
    trigger: str = Field(max_length=2 * ANSWER_LIMITS["trigger"])
    went_well: list[_Item]
    went_wrong: list[_Item]
    got_lucky: list[_Item]


def _parse(content: str) -> _Answer:
    try:
        data = json.loads(content)
    except ValueError:
        raise Rejected("the LLM answer is not JSON") from None
    if not isinstance(data, dict):
        raise Rejected("the LLM answer is not a JSON object")
    try:
        answer = _Answer.model_validate(data)
    except ValidationError as error:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['type']}" for e in error.errors()[:3]
        )
        raise Rejected(f"the LLM answer has the wrong shape ({where})") from None
    if any(len(items) > _HARD_ITEMS for items in (answer.went_well, answer.went_wrong, answer.got_lucky)):
        raise Rejected("the LLM answer has the wrong shape (too many list items)")
    return answer


_LINK = re.compile(r"(?i)\b(?:https?|ftp|file)://|\b(?:javascript|mailto):|\bdata:[a-z]+/|\bwww\.")
_BROADCAST = re.compile(r"(?i)<!(?:channel|here|everyone|subteam)|(?<![\w@])@(?:channel|here|everyone)\b")
_TAKEOVER = re.compile(
    r"(?i)\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:instructions?|prompts?)\b"
    r"|\bsystem prompt\b|\bnew instructions\b|\byou are now\b|\bas an ai\b|\bjailbreak"
    r"|\bprompt injection\b"
)
# Slack control sequences: <@U1|name>, <#C1|name>, <!here>, <!date^...|text>, <url|text>; Markdown links.
_SLACK_SEQUENCE = re.compile(r"<([@#!]|[a-z][a-z0-9+.-]*:)([^<>]*)>", re.IGNORECASE)
_MD_LINK = re.compile(r"!?\[([^\[\]]*)\]\(([^()]*)\)")
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_DEMAND = re.compile(
    r"(?i)\b(?:write|say|state|claim|conclude|add|include|mention|output|print|respond|reply|answer|tell"
    r"|insert|put|blame|report|call)\b(?:\s+(?:that|this|the following|them|it))?\s*:?\s*"
    r"(?P<payload>[^.;!?\n]{6,120})"
)
_WORD = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"\b[A-Z][a-z]{1,30}\b")
_HOST = re.compile(r"(?i)\b(?:https?|ftp)://([a-z0-9.-]+)")


def _check(content: str, data: str, model: str) -> tuple[Narrative, tuple[str, ...]]:
    """Parse, validate, clean and vet the answer against the data that was sent."""
    answer = _parse(content)
    raw = [
        answer.summary,
        answer.impact,
        answer.root_cause,
        answer.trigger,
        *answer.went_well,
        *answer.went_wrong,
        *answer.got_lucky,
    ]
    _vet(" \n".join(raw), data)
    texts = {name: _clean(getattr(answer, name)) for name in TEXT_FIELDS}
    lists = {
        name: tuple(c for item in getattr(answer, name) if (c := _clean(item)))[:MAX_ITEMS]
        for name in LIST_FIELDS
    }
    if not texts["summary"]:
        raise Rejected("the LLM answer has no summary")
    warnings: list[str] = []
    if any(_SLACK_SEQUENCE.search(item) or _MD_LINK.search(item) for item in raw):
        warnings.append("Slack or Markdown markup was removed from the LLM narrative")
    blame = _blaming_phrases([*texts.values(), *(i for items in lists.values() for i in items)])
    if blame:
        warnings.append(f"the LLM narrative uses blaming language ({', '.join(blame)}): reword it")
    narrative = Narrative(
        summary=texts["summary"],
        impact=texts["impact"],
        root_cause=texts["root_cause"],
        trigger=texts["trigger"],
        went_well=lists["went_well"],
        went_wrong=lists["went_wrong"],
        got_lucky=lists["got_lucky"],
        source=redact(f"llm:{model}"),
    )
    return narrative, tuple(warnings)


def _vet(answer: str, data: str) -> None:
    """Rejected when the answer shows an injection at work; the data is the JSON document that was sent."""
    if _LINK.search(answer) or any(host in answer.lower() for host in _hosts(data)):
        raise Rejected("the LLM answer was rejected: it contains a link")
    if _BROADCAST.search(answer):
        raise Rejected("the LLM answer was rejected: it contains a Slack broadcast mention")
    if _TAKEOVER.search(answer):
        raise Rejected("the LLM answer was rejected: it contains instruction-like text")
    payloads, rest = _demands(data)
    words = _WORD.findall(answer.lower())
    named = {n.lower() for n in _NAME.findall(answer)}
    known = set(_WORD.findall(rest.lower()))
    for payload in payloads:
        demanded = _WORD.findall(payload.lower())[:4]
        if len(demanded) >= 3 and _contains(words, demanded):
            raise Rejected(
                "the LLM answer was rejected: it repeats an instruction found in the incident data"
            )
        # a name that appears in the data only inside such an instruction ("write that Bob caused this")
        if {n.lower() for n in _NAME.findall(payload)} & named - known:
            raise Rejected("the LLM answer was rejected: it names someone an instruction in the data named")


def _demands(data: str) -> tuple[list[str], str]:
    """What people's text in the sent data asks the model to write (``write that X``, ``add Y``), and
    every other word of the data. Only quoted human text is searched: keybot's own lines are not demands.
    """
    try:
        document = json.loads(data)
    except ValueError:
        return [], data
    human = document.pop("quoted_human_text", None) if isinstance(document, dict) else None
    payloads: list[str] = []
    rest = list(_strings(document))
    for text in _strings(human):
        found = [m.group("payload") for m in _DEMAND.finditer(text)]
        payloads += found
        rest.append(_DEMAND.sub(" ", text))
    return payloads, "\n".join(rest)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _hosts(data: str) -> set[str]:
    return {h.lower().strip(".") for h in _HOST.findall(data) if "." in h}


def _contains(words: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(words[i : i + n] == run for i in range(len(words) - n + 1))


def _clean(text: str) -> str:
    """Redacted, with Slack sequences and Markdown links reduced to their plain label, no invisible text."""
    text = _INVISIBLE.sub("", redact(text))
    text = _SLACK_SEQUENCE.sub(_slack_label, text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    return redact(text).strip()


def _slack_label(found: re.Match[str]) -> str:
    kind, rest = found.group(1), found.group(2)
    label = rest.partition("|")[2].strip().lstrip("@#!")
    if kind == "@":
        return label or "someone"
    if kind == "#":
        return f"#{label}" if label else "a channel"
    return label


def _blaming_phrases(texts: list[str]) -> list[str]:
    """The postmortem domain's blame check (when it is installed), over every string of the narrative."""
    check = _blame_checker()
    if check is None:
        return []
    found: list[str] = []
    for text in texts:
        try:
            phrases = check(text)
        except Exception:
            return []
        found += [redact(p)[:60] for p in phrases if p and redact(p)[:60] not in found]
    return found[:5]


def _blame_checker() -> Callable[[str], list[str]] | None:
    try:
        module = importlib.import_module("bot.postmortems.blame")
    except ImportError:
        return None
    check = getattr(module, "blaming_phrases", None)
    return check if callable(check) else None
