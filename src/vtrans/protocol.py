"""The wire contract shared by client and server: models and header parsing. Pure, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Annotated, Literal

import msgspec

Result = Literal["pending", "completed", "error"]
RESULTS: frozenset[str] = frozenset(("pending", "completed", "error"))
TERMINAL: frozenset[str] = frozenset(("completed", "error"))

# --- the shapes of what a request carries -------------------------------------------------------
# One place for each: the service validates with these, and /openapi.json states them as patterns
# (written in the syntax Python's ``re`` and JSON Schema's ECMA-262 share; match with ``fullmatch``).

#: A job's id: ``job_`` and 32 lower-case hex digits.
JOB_ID_PATTERN = "^job_[0-9a-f]{32}$"
JOB_ID_RE = re.compile(JOB_ID_PATTERN)
#: A listing's cursor (opaque to clients, but of a fixed shape): ``c`` and the position of the
#: page's last job in hex, below 2**63.
CURSOR_PATTERN = "^c[0-7]?[0-9a-f]{1,15}$"
CURSOR_RE = re.compile(CURSOR_PATTERN)
#: An ``Idempotency-Key``: 1 to 255 visible ASCII characters (no spaces, no controls).
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_KEY_PATTERN = f"^[!-~]{{1,{MAX_IDEMPOTENCY_KEY}}}$"
IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
MAX_VIDEO_SECONDS = 6 * 3600.0
MAX_SIMULATED_SECONDS = 24 * 3600.0

#: Target languages the service translates into (ISO 639-1, plus a few regional variants).
LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fi": "Finnish",
    "fil": "Filipino",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ms": "Malay",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "pt-BR": "Portuguese (Brazil)",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
    "zh-TW": "Chinese (Traditional)",
}


def _any_case(code: str) -> str:
    """A pattern of ``code`` in any case (codes are letters and ``-``, which need no escape)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in code)


#: A target language's code, in any case (``ES`` and ``pt-br`` name ``es`` and ``pt-BR``).
LANGUAGE_PATTERN = "^(?:" + "|".join(_any_case(code) for code in sorted(LANGUAGES)) + ")$"

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = "[0-9a-fA-F]{1,4}"
_IPV6 = "|".join(
    (
        f"(?:{_H16}:){{7}}{_H16}",
        f"(?:{_H16}:){{1,7}}:",
        *(f"(?:{_H16}:){{1,{7 - n}}}(?::{_H16}){{1,{n}}}" for n in range(1, 7)),
        f":(?:(?::{_H16}){{1,7}}|:)",
        f"::(?:[fF]{{4}}(?::0{{1,4}})?:)?{_IPV4}",
        f"(?:{_H16}:){{1,4}}:{_IPV4}",
    )
)
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:[1-5]?[0-9]{1,4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: A ``source_url`` or ``callback_url``: an absolute http(s) URL in visible ASCII, with a host
#: name, an IPv4 address or a bracketed IPv6 one, an optional port (0-65535), and no credentials.
HTTP_URL_PATTERN = (
    rf"^[hH][tT][tT][pP][sS]?://(?:{_LABEL}(?:\.{_LABEL})*|\[(?:{_IPV6})\])(?::{_PORT})?(?:[/?#][!-~]*)?$"
)
HTTP_URL_RE = re.compile(HTTP_URL_PATTERN)


class JobError(msgspec.Struct, frozen=True):
    """Why a job ended in ``error``: a stable ``code`` and a human ``message``."""

    code: str
    message: str


class Simulate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-job overrides of the simulation, so a test can ask for an exact timeline."""

    duration_seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_SIMULATED_SECONDS)] | None = None
    outcome: Literal["completed", "error"] | None = None
    error_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class JobCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/jobs``."""

    language: Annotated[str, msgspec.Meta(min_length=2, max_length=16)]
    video_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_VIDEO_SECONDS)]
    source_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    callback_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    simulate: Simulate | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A translation job as the service reports it.

    Only ``result`` is guaranteed: the same type decodes the spec's bare ``GET /status``
    body ``{"result": ...}``, in which case every other field is ``None``.
    """

    result: Result
    id: str | None = None
    progress: float | None = None
    language: str | None = None
    video_seconds: float | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    estimated_completion_at: datetime | None = None
    #: The estimate relative to the answer, immune to clock skew between client and server.
    estimated_seconds_remaining: float | None = None
    error: JobError | None = None
    source_url: str | None = None
    callback_url: str | None = None

    @property
    def done(self) -> bool:
        """True once the job reached a terminal result (it never changes again)."""
        return self.result in TERMINAL


class JobPage(msgspec.Struct, frozen=True):
    """One page of ``GET /v1/jobs``; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[Job]
    next_cursor: str | None = None


#: Most jobs one batch wait may watch (one event stream carries them all; their ids fit
#: :data:`MAX_BATCH_BYTES`).
MAX_BATCH = 10_000
MAX_BATCH_BYTES = 1 << 20


class JobsWait(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/jobs/wait``: the jobs to watch at once."""

    ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class JobsWaitResult(msgspec.Struct, frozen=True):
    """Answer of ``POST /v1/jobs/wait``: the watched jobs that are finished, and how many are not."""

    items: list[Job]
    pending: int


class Status(msgspec.Struct, frozen=True):
    """The spec's ``GET /status`` body, exactly: ``{"result": ...}`` (what the service sends, and
    what the client returns)."""

    result: Result

    @property
    def done(self) -> bool:
        """True once the result is terminal (it never changes again)."""
        return self.result in TERMINAL


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem detail (``application/problem+json``)."""

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    instance: str | None = None


PROBLEM_JSON = "application/problem+json"


def problem_type(code: str) -> str:
    """The URI naming a kind of problem."""
    return f"urn:vtrans:problem:{code}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3), or ``None``.

    Accepts delay-seconds and HTTP-dates; a date in the past means 0; garbage means ``None``.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def format_retry_after(seconds: float) -> str:
    """Whole seconds for a ``Retry-After`` header, never 0 while there is something to wait for."""
    return str(max(1, math.ceil(seconds)))


#: A preference's value ends at the end, a separator or its closing quote: ``wait=1e309`` is not
#: ``wait=1`` but a value not understood, and ignored as RFC 7240 says.
_END = r"(?=$|[,;\s\"])"
_PREFER_WAIT = re.compile(rf"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?){_END}", re.IGNORECASE)
_PREFER_PROGRESS = re.compile(rf"(?:^|[,;\s])progress\s*=\s*\"?(0?\.\d+|1(?:\.0+)?){_END}", re.IGNORECASE)


def parse_prefer_wait(value: str | None) -> float | None:
    """The ``wait`` preference of a ``Prefer`` header (RFC 7240 §4.3), or ``None``."""
    if not value:
        return None
    match = _PREFER_WAIT.search(value)
    return float(match.group(1)) if match else None


def parse_prefer_progress(value: str | None) -> float | None:
    """The ``progress`` preference (vtrans's own, beside RFC 7240's ``wait``): end a hold once the
    job's progress has grown by this much (a share, 0 to 1), or ``None``."""
    if not value:
        return None
    match = _PREFER_PROGRESS.search(value)
    step = float(match.group(1)) if match else 0.0
    return step if step > 0 else None


# --- webhooks (Standard Webhooks) -------------------------------------------------------------


class WebhookEvent(msgspec.Struct, frozen=True):
    """The body of a webhook: ``type`` is ``job.completed`` or ``job.failed``; ``data`` the job."""

    type: str
    timestamp: datetime
    data: Job


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def sign_webhook(secret: str, msg_id: str, timestamp: int, payload: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``id.timestamp.payload`` keyed with the base64-decoded ``whsec_`` secret."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, payload)
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
