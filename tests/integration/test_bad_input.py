"""Bad input is a 4xx ``application/problem+json`` (RFC 9457) with a clear ``detail``, never a 500.

Every problem has ``type`` (``urn:vtrans:problem:<code>``), ``title``, ``status`` equal to the
HTTP status, and a ``detail`` that names what was wrong. Validation failures (422) are not
pinned to one problem code, only to the field their ``detail`` must name. One service serves the whole module:
nothing here depends on what else is stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.integration

UNKNOWN_ID = "job_" + "0" * 32
BASE: dict[str, Any] = {"language": "fr", "video_seconds": 10}
MAX_BODY = 64 * 1024


@pytest.fixture
def api(shared_service: Any) -> Iterator[httpx2.Client]:
    with shared_service.client() as client:
        yield client


def body(**fields: Any) -> bytes:
    """The base job with ``fields`` replaced (``None`` removes one)."""
    merged = {**BASE, **fields}
    return json.dumps({k: v for k, v in merged.items() if v is not None}).encode()


def cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def case(payload: bytes, status: int, code: str | None, fragment: str | None, id: str) -> Any:
    return pytest.param(payload, status, code, fragment, id=id)


BAD_BODIES = [
    # Not JSON at all.
    case(b'{"language": "fr",', 400, "malformed-json", "json", "truncated"),
    case(b"{'language': 'fr', 'video_seconds': 1}", 400, "malformed-json", "json", "single-quotes"),
    case(body() + b" trailing", 400, "malformed-json", "json", "trailing-garbage"),
    case(b'{"language": "fr", "video_seconds": NaN}', 400, "malformed-json", "json", "nan-literal"),
    case(b'{"language": "fr", "video_seconds": Infinity}', 400, "malformed-json", "json", "infinity-literal"),
    case(b'{"language": "fr\xff\xfe", "video_seconds": 1}', 400, "malformed-json", "json", "invalid-utf8"),
    case(b"\x00\x01\x02", 400, "malformed-json", "json", "binary"),
    case(b"<job language='fr'/>", 400, "malformed-json", "json", "xml"),
    # Empty.
    case(b"", 400, "empty-body", "empty", "empty"),
    case(b"  \n\t ", 400, "empty-body", "empty", "whitespace"),
    # JSON, but not an object.
    case(b"[]", 422, None, "object", "array"),
    case(b'"x"', 422, None, "object", "string"),
    case(b"null", 422, None, "object", "null"),
    case(b"42", 422, None, "object", "number"),
    case(b"true", 422, None, "object", "bool"),
    # Wrong types.
    case(body(language=5), 422, None, "language", "language-int"),
    case(body(video_seconds="abc"), 422, None, "video_seconds", "video-string"),
    case(body(video_seconds="NaN"), 422, None, "video_seconds", "video-nan-string"),
    case(body(video_seconds=True), 422, None, "video_seconds", "video-bool"),
    case(body(video_seconds=[10]), 422, None, "video_seconds", "video-array"),
    case(body(source_url=5), 422, None, "source_url", "url-int"),
    case(body(simulate="fast"), 422, None, "simulate", "simulate-string"),
    case(body(simulate={"duration_seconds": "1"}), 422, None, "duration_seconds", "sim-duration-str"),
    case(body(simulate={"outcome": "maybe"}), 422, None, "outcome", "sim-outcome"),
    # Missing and unknown fields.
    case(b"{}", 422, None, "language is required", "empty-object"),
    case(body(video_seconds=None), 422, None, "video_seconds", "no-video-seconds"),
    case(body(language=None), 422, None, "language", "no-language"),
    case(body(colour="red"), 422, None, "colour", "unknown-field"),
    case(body(simulate={"speed": 2}), 422, None, "speed", "unknown-simulate-field"),
    # Video lengths that make no sense.
    case(body(video_seconds=-5), 422, None, "video_seconds", "video-negative"),
    case(body(video_seconds=0), 422, None, "video_seconds", "video-zero"),
    case(body(video_seconds=1e12), 422, None, "video_seconds", "video-absurd"),
    case(body(video_seconds=6 * 3600 + 1), 422, None, "video_seconds", "video-over-6h"),
    case(b'{"language": "fr", "video_seconds": 1e400}', 422, None, "video_seconds", "video-overflow"),
    # Languages.
    case(body(language="xx"), 422, "unknown-language", "xx", "language-unknown"),
    case(body(language="e-n"), 422, "unknown-language", "e-n", "language-mangled"),
    case(body(language=""), 422, None, "language", "language-empty"),
    case(body(language="e" * 17), 422, None, "language", "language-too-long"),
    # URLs.
    case(body(source_url="not a url"), 422, None, "source_url", "url-words"),
    case(body(source_url="ftp://example.com/v.mp4"), 422, None, "source_url", "url-ftp"),
    case(body(source_url="http://"), 422, None, "source_url", "url-no-host"),
    case(body(source_url="/videos/v.mp4"), 422, None, "source_url", "url-relative"),
    case(body(source_url=""), 422, None, "source_url", "url-empty"),
    case(body(source_url="https://e.com/" + "a" * 3000), 422, None, "source_url", "url-too-long"),
    case(body(callback_url="javascript:alert(1)"), 422, None, "callback_url", "callback-js"),
    case(body(callback_url="mailto:ops@example.com"), 422, None, "callback_url", "callback-mailto"),
    case(body(callback_url="http://[::1/hook"), 422, None, "callback_url", "callback-bad-ipv6"),
    case(body(callback_url="http://example.com:99999/h"), 422, None, "callback_url", "callback-bad-port"),
    case(body(callback_url="http://127.0.0.1:9/x\u0000"), 422, None, "callback_url", "callback-nul"),
    case(body(callback_url="http://127.0.0.1:9/x\r\nX-Evil: 1"), 422, None, "callback_url", "callback-crlf"),
    case(body(callback_url="http://127.0.0.1:9/a b"), 422, None, "callback_url", "callback-space"),
    case(body(source_url="https://example.com/\u0007v.mp4"), 422, None, "source_url", "source-bell"),
    # Simulation overrides.
    case(body(simulate={"duration_seconds": -1}), 422, None, "duration_seconds", "sim-negative"),
    case(body(simulate={"duration_seconds": 1e9}), 422, None, "duration_seconds", "sim-absurd"),
    case(body(simulate={"error_code": ""}), 422, None, "error_code", "sim-empty-code"),
    case(body(simulate={"outcome": "cancelled"}), 422, None, "outcome", "sim-outcome-cancelled"),
]


@pytest.mark.parametrize(("payload", "status", "code", "fragment"), BAD_BODIES)
def test_a_bad_job_body_is_a_problem(
    api: httpx2.Client,
    assert_problem: Callable[..., Any],
    payload: bytes,
    status: int,
    code: str | None,
    fragment: str | None,
) -> None:
    response = api.post("/v1/jobs", content=payload, headers={"Content-Type": "application/json"})
    detail = assert_problem(response, status, code=code, detail_contains=fragment)["detail"]
    assert "Expected `" not in detail, f"the validator's own words, not the service's: {detail}"


def test_a_bound_is_said_in_words(api: httpx2.Client, assert_problem: Callable[..., Any]) -> None:
    response = api.post("/v1/jobs", json={"language": "fr", "video_seconds": 6 * 3600 + 1})
    detail = assert_problem(response, 422)["detail"]
    assert "video_seconds must be at most 21600 s (6 h)" in detail, detail


def test_the_good_body_the_bad_ones_vary_is_accepted(api: httpx2.Client) -> None:
    """The control: without its one defect, each bad body above would be a valid job."""
    response = api.post("/v1/jobs", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "too-long"])
def test_a_bad_idempotency_key_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], key: str
) -> None:
    response = api.post("/v1/jobs", content=body(), headers={"Idempotency-Key": key})
    assert_problem(response, 400, code="bad-idempotency-key", detail_contains="Idempotency-Key")


def _chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(
    "make_content",
    [
        pytest.param(lambda: b" " * (MAX_BODY + 1) + body(), id="content-length"),
        pytest.param(lambda: _chunks(4 * MAX_BODY), id="chunked"),
        pytest.param(lambda: _chunks(64 * MAX_BODY, size=65536), id="chunked-4mb"),
    ],
)
def test_an_oversized_body_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], make_content: Callable[[], Any]
) -> None:
    content = make_content()
    request = api.build_request("POST", "/v1/jobs", content=content)
    if not isinstance(content, bytes):
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
    try:
        response = api.send(request)
    except httpx2.WriteError:
        pytest.fail("the service closed the connection instead of answering 413")
    assert_problem(response, 413, code="body-too-large", detail_contains="exceeds")


# --- job ids ----------------------------------------------------------------------------------

MALFORMED_IDS = [
    "nope",
    "job_",
    "job_" + "g" * 32,
    "job_" + "A" * 32,
    "job_" + "0" * 31,
    "job_" + "0" * 33,
    "JOB_" + "0" * 32,
    "x" * 500,
    "job_0000000000000000000000000000000%",
]


@pytest.mark.parametrize("job_id", MALFORMED_IDS)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_malformed_job_id_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], method: str, job_id: str
) -> None:
    response = api.request(method, f"/v1/jobs/{job_id}")
    assert_problem(response, 400, code="malformed-job-id", detail_contains="job id")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unknown_job_id_is_not_found(
    api: httpx2.Client, assert_problem: Callable[..., Any], method: str
) -> None:
    assert_problem(
        api.request(method, f"/v1/jobs/{UNKNOWN_ID}"), 404, code="job-not-found", detail_contains=UNKNOWN_ID
    )


@pytest.mark.parametrize("job_id", MALFORMED_IDS)
def test_status_with_a_malformed_job_id_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], job_id: str
) -> None:
    response = api.get("/status", params={"job_id": job_id})
    assert_problem(response, 400, code="malformed-job-id", detail_contains="job id")


def test_status_with_an_unknown_job_id_is_not_found(
    api: httpx2.Client, assert_problem: Callable[..., Any]
) -> None:
    assert_problem(api.get("/status", params={"job_id": UNKNOWN_ID}), 404, code="job-not-found")


# --- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!!!",
        "Zm9v",
        cursor(b"seq:abc"),
        cursor(b"seq:-1"),
        cursor(b"page:3"),
        cursor(b"\xff\xfe\xfd"),
        cursor(b"seq:" + b"9" * 30),
        cursor(b"seq:5"),
        "",
        "c",
        "C1",
        "cg",
        "c-1",
        "c8000000000000000",
        "c" + "0" * 17,
    ],
    ids=[
        *("punctuation", "foo", "seq-abc", "seq-negative", "page", "not-utf8", "seq-huge", "old-format"),
        *("empty", "c-alone", "upper-case", "not-hex", "negative", "2-to-the-63", "too-long"),
    ],
)
def test_a_bad_cursor_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], value: str
) -> None:
    assert_problem(
        api.get("/v1/jobs", params={"cursor": value}), 400, code="bad-cursor", detail_contains="cursor"
    )


@pytest.mark.parametrize(
    "value", ["0", "101", "-1", "x", "", "1.5", "1e1", "²"], ids=lambda v: f"limit={v!r}"
)
def test_a_bad_limit_is_a_problem(api: httpx2.Client, assert_problem: Callable[..., Any], value: str) -> None:
    assert_problem(
        api.get("/v1/jobs", params={"limit": value}), 400, code="bad-query", detail_contains="limit"
    )


@pytest.mark.parametrize("value", ["done", "PENDING", "", "completed,error"], ids=lambda v: f"result={v!r}")
def test_a_bad_result_filter_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], value: str
) -> None:
    assert_problem(
        api.get("/v1/jobs", params={"result": value}), 400, code="bad-query", detail_contains="result"
    )


@pytest.mark.parametrize(
    "query",
    [
        "/v1/jobs?result=pending&result=error",
        "/v1/jobs?limit=5&limit=6",
        "/v1/jobs/events?result=pending&result=error",
        f"/status?job_id={UNKNOWN_ID}&job_id={UNKNOWN_ID}",
    ],
)
def test_a_parameter_given_twice_is_a_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], query: str
) -> None:
    """Which of two values to use would be a guess: the service says so instead."""
    assert_problem(api.get(query), 400, code="bad-query", detail_contains="given 2 times")


# --- routes and methods -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/v2/jobs"), ("GET", "/v1/job"), ("GET", "/status/extra"), ("POST", "/nope")],
)
def test_an_unknown_route_is_a_404_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], method: str, path: str
) -> None:
    assert_problem(api.request(method, path), 404, code="no-such-route", detail_contains=path)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/jobs", {"GET", "POST"}),
        ("DELETE", "/v1/jobs", {"GET", "POST"}),
        ("PATCH", "/status", {"GET"}),
        ("POST", "/status", {"GET"}),
        ("DELETE", "/status", {"GET"}),
        ("POST", f"/v1/jobs/{UNKNOWN_ID}", {"GET", "DELETE"}),
        ("PUT", f"/v1/jobs/{UNKNOWN_ID}", {"GET", "DELETE"}),
        ("POST", "/healthz", {"GET"}),
        ("GET", "/v1/jobs/wait", {"POST"}),
        ("DELETE", "/v1/jobs/wait", {"POST"}),
        ("PUT", "/v1/jobs/wait", {"POST"}),
    ],
)
def test_a_wrong_method_is_a_405_problem(
    api: httpx2.Client, assert_problem: Callable[..., Any], method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path)
    assert_problem(response, 405, code="method-not-allowed", detail_contains=method)
    allow = {m.strip() for m in response.headers.get("allow", "").split(",")}
    assert allowed <= allow, allow


def test_no_request_above_made_the_service_fail(shared_service: Any) -> None:
    """Belt and braces: the service logged no unhandled exception (runs last in this module)."""
    log = shared_service.log_text()
    assert "unhandled error" not in log
    assert "Traceback" not in log
