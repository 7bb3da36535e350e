"""Validation of stand-in traffic against the official OpenAI OpenAPI spec (openapi-core).

The spec is loaded once per process (about a second) with spec validation off: the published
file has duplicate ``required`` entries that strict validation rejects.

Wire format vs. spec: the ``openai`` SDK serialises arrays as ``name[]=a&name[]=b`` and objects as
``name[key]=v`` (its ``Querystring(array_format="brackets")``), while the spec declares some
parameters as plain ``name`` (style form) and ``effective_at`` as a form-exploded object. The real API
accepts the SDK's form, so before validating we map the wire form onto the spec's declared names.
Query parameters that the operation does not declare at all are reported as validation errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from jsonschema import _keywords as js_keywords  # type: ignore[import-untyped, unused-ignore]
from jsonschema.validators import extend  # type: ignore[import-untyped, unused-ignore]
from openapi_core import OpenAPI
from openapi_core.casting.schemas import oas31_types_caster
from openapi_core.casting.schemas.factories import SchemaCastersFactory
from openapi_core.configurations import Config
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.unmarshalling.request.unmarshallers import V31RequestUnmarshaller
from openapi_core.unmarshalling.response.unmarshallers import V31ResponseUnmarshaller
from openapi_core.unmarshalling.schemas import oas31_format_unmarshallers, oas31_types_unmarshaller
from openapi_core.unmarshalling.schemas.factories import SchemaUnmarshallersFactory
from openapi_core.validation.schemas.factories import DialectSchemaValidatorsFactory
from openapi_schema_validator import OAS31_BASE_DIALECT_ID, OAS30ReadValidator, OAS31Validator
from openapi_schema_validator import _keywords as oas_keywords
from werkzeug.datastructures import ImmutableMultiDict

SPEC_ENV = "KEYBOT_OPENAI_SPEC"
SPEC_URL_ENV = "KEYBOT_OPENAI_SPEC_URL"  # a mirror to download the pinned spec from; still hash-checked
# validation runs against the spec's server URL, whatever port the stand-in listens on
SPEC_HOST = "https://api.openai.com"
SPEC_PREFIX = "/v1"


SPEC_COMMIT = "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
SPEC_URL = f"https://raw.githubusercontent.com/openai/openai-openapi/{SPEC_COMMIT}/openapi.yaml"
SPEC_SHA256 = "db5d7478feae10b4d331834c60d9765a8aa042e38419f9b1694288c11aa8ebc8"
"""The official spec, pinned: `openai/openai-openapi` at SPEC_COMMIT, checked by its digest."""


def spec_path() -> Path:
    """`KEYBOT_OPENAI_SPEC` when set (CI points it at a local copy); else the pinned spec, downloaded once
    into the user's cache and checked against its digest."""
    env = os.environ.get(SPEC_ENV)
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keybot"
    path = cache / f"openai-openapi-{SPEC_COMMIT[:12]}.yaml"
    if not path.is_file():
        _download(path, os.environ.get(SPEC_URL_ENV) or SPEC_URL)
    return path


def _download(path: Path, url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
    except OSError as error:
        raise FileNotFoundError(
            f"the OpenAI OpenAPI spec is not cached at {path} and could not be downloaded ({error}); "
            f"download {SPEC_URL} there, or set {SPEC_ENV} to a copy"
        ) from None
    if hashlib.sha256(body).hexdigest() != SPEC_SHA256:
        raise FileNotFoundError(f"{url} did not match the pinned sha256 {SPEC_SHA256}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(body)
    partial.replace(path)  # atomic: parallel test workers never read half a file


def _hinted(name: str) -> Any:
    """``oneOf``/``anyOf``/``allOf`` that treat a mapping-less ``discriminator`` as a hint.

    OpenAI's spec puts ``discriminator: {propertyName: role}`` (no ``mapping``) on unions whose values
    (``user``, ``organization.usage.completions.result``) are not schema names, so the implicit
    ``#/components/schemas/<value>`` lookup of openapi-schema-validator cannot resolve. Without a
    mapping we validate with plain JSON Schema semantics (exactly one / at least one / all), which
    is what the spec means; with a mapping, the library's discriminator handling applies.

    A few schemas still carry OAS 3.0's ``nullable: true`` (e.g. ``StopConfiguration``, whose
    ``default: null`` would otherwise be invalid); null is accepted where that is written.
    """
    plain = getattr(js_keywords, name)
    discriminated = getattr(oas_keywords, name)

    def keyword(validator: Any, subschemas: Any, instance: Any, schema: Any) -> Any:
        if instance is None and schema.get("nullable") is True:
            return iter(())
        disc = schema.get("discriminator")
        if disc is not None and disc.get("mapping"):
            return discriminated(validator, subschemas, instance, schema)
        return plain(validator, subschemas, instance, schema)

    return keyword


def _nullable_type(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
    if instance is None and schema.get("nullable") is True:
        return iter(())
    return OAS31Validator.VALIDATORS["type"](validator, types, instance, schema)


HintedOAS31Validator = extend(
    OAS31Validator, {**{k: _hinted(k) for k in ("oneOf", "anyOf", "allOf")}, "type": _nullable_type}
)


class _HintedValidatorsFactory(DialectSchemaValidatorsFactory):
    def get_validator_cls(self, spec: Any, schema: Any) -> Any:
        return HintedOAS31Validator


_validators = _HintedValidatorsFactory(
    HintedOAS31Validator, OAS31_BASE_DIALECT_ID, format_checker=OAS30ReadValidator.FORMAT_CHECKER
)
_casters = SchemaCastersFactory(_validators, oas31_types_caster)
_unmarshallers = SchemaUnmarshallersFactory(
    _validators, oas31_types_unmarshaller, format_unmarshallers=oas31_format_unmarshallers
)


class _RequestUnmarshaller(V31RequestUnmarshaller):
    schema_validators_factory = _validators
    schema_casters_factory = _casters
    schema_unmarshallers_factory = _unmarshallers


class _ResponseUnmarshaller(V31ResponseUnmarshaller):
    schema_validators_factory = _validators
    schema_casters_factory = _casters
    schema_unmarshallers_factory = _unmarshallers


@functools.cache
def load_openapi() -> OpenAPI:
    path = spec_path()
    if not path.is_file():
        raise FileNotFoundError(f"OpenAI OpenAPI spec not found at {path} (set {SPEC_ENV})")
    config = Config(
        spec_validator_cls=None,
        request_unmarshaller_cls=_RequestUnmarshaller,
        response_unmarshaller_cls=_ResponseUnmarshaller,
    )
    return OpenAPI.from_file_path(str(path), config=config)


@dataclass(frozen=True)
class ValidationIssue:
    """One request or response that does not match the spec."""

    kind: str  # "request" | "response" | "unhandled" | "crash"
    method: str
    path: str
    status: int | None
    errors: tuple[str, ...]

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" + (f" -> {self.status}" if self.status is not None else "")
        return f"[{self.kind}] {where}: " + "; ".join(self.errors)


def describe(err: BaseException) -> str:
    parts = [repr(err)]
    cause = err.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            parts.extend(
                f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in schema_errors
            )
        else:
            parts.append(repr(cause))
        cause = cause.__cause__
    return " | ".join(parts)


_BRACKETED = re.compile(r"^(?P<name>[A-Za-z0-9_]+)\[(?P<key>[A-Za-z0-9_]+)\]$")


class SpecValidator:
    """Validates one operation's requests and responses; ``pattern`` is a spec path template."""

    def __init__(self) -> None:
        self.api = load_openapi()
        self._lock = threading.Lock()  # openapi-core caches are not documented as thread-safe

    def _operation(self, pattern: str, method: str) -> Any:
        return self.api.spec / "paths" / pattern / method.lower()

    @functools.cache  # noqa: B019 - one validator per process, bounded by the route table
    def declared_query_params(self, pattern: str, method: str) -> frozenset[str]:
        op = self._operation(pattern, method)
        if "parameters" not in op:
            return frozenset()
        return frozenset(p["name"] for p in op / "parameters" if p["in"] == "query")

    @functools.cache  # noqa: B019
    def declared_statuses(self, pattern: str, method: str) -> frozenset[str]:
        return frozenset(str(k) for k in (self._operation(pattern, method) / "responses").str_keys())

    def normalize_query(
        self, pattern: str, method: str, pairs: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """Map the SDK's wire form onto the spec's parameter names; also return undeclared names."""
        declared = self.declared_query_params(pattern, method)
        out: list[tuple[str, str]] = []
        objects: dict[str, list[str]] = {}
        unknown: list[str] = []
        for key, value in pairs:
            if key in declared:
                out.append((key, value))
            elif key.endswith("[]") and key[:-2] in declared:
                out.append((key[:-2], value))
            elif (m := _BRACKETED.match(key)) and m["name"] in declared:
                objects.setdefault(m["name"], []).append(f"{m['key']}={value}")
            else:
                unknown.append(key)
        out.extend((name, "&".join(kv)) for name, kv in objects.items())
        return out, unknown

    def _mock_request(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes
    ) -> MockRequest:
        req = MockRequest(
            SPEC_HOST,
            method.lower(),
            SPEC_PREFIX + path,
            headers=headers,
            data=body,
            content_type=headers.get("content-type", "application/json"),
        )
        req.parameters.query = ImmutableMultiDict(query)
        return req

    def validate_request(
        self,
        pattern: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
    ) -> list[str]:
        normalized, unknown = self.normalize_query(pattern, method, query)
        errors = [f"query parameter {name!r} is not declared by the spec" for name in unknown]
        req = self._mock_request(method, path, normalized, headers, body)
        with self._lock:
            result = self.api.unmarshal_request(req)
        errors.extend(describe(e) for e in result.errors)
        return errors

    def is_security_error(self, errors: list[str]) -> bool:
        return any(e.startswith("SecurityValidationError") for e in errors)

    def validate_response(
        self, pattern: str, method: str, path: str, status: int, headers: dict[str, str], body: bytes
    ) -> list[str]:
        statuses = self.declared_statuses(pattern, method)
        if (
            str(status) not in statuses
            and "default" not in statuses
            and f"{str(status)[0]}XX" not in statuses
        ):
            if status >= 400:  # undeclared error status: still OpenAI's documented error shape
                return validate_error_body(self.api, body)
            return [f"status {status} is not declared for {method.upper()} {pattern}"]
        req = self._mock_request(method, path, [], {"authorization": "Bearer x"}, b"")
        resp = MockResponse(
            body,
            status_code=status,
            headers=headers,
            content_type=headers.get("Content-Type", "application/json"),
        )
        with self._lock:
            result = self.api.unmarshal_response(req, resp)
        return [describe(e) for e in result.errors]


@functools.cache
def _error_validator(api: OpenAPI) -> Draft202012Validator:
    error_schema = (api.spec / "components" / "schemas" / "Error").read_value()
    return Draft202012Validator(
        {"type": "object", "properties": {"error": error_schema}, "required": ["error"]}
    )


def validate_error_body(api: OpenAPI, body: bytes) -> list[str]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        return [f"error body is not JSON: {exc}"]
    return [
        f"ErrorResponse: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _error_validator(api).iter_errors(payload)
    ]
