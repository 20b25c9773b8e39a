"""Where webhooks may go: the guard's rules, on addresses in every form, and DNS rebinding caught
when sending — with a scripted resolver, so no real DNS is needed."""

from __future__ import annotations

import ipaddress
import time

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrans.protocol import HTTP_URL_RE, LANGUAGE_PATTERN, LANGUAGES, Job
from vtrans.server.callbacks import Guard, Refused, literal, syntax_problem
from vtrans.server.config import WebhookConfig
from vtrans.server.outbox import Outbox
from vtrans.server.simulation import SimulationConfig, draw_timeline
from vtrans.server.stores import NewJob
from vtrans.server.stores.memory import MemoryStore

pytestmark = pytest.mark.anyio

PUBLIC = Guard(loopback=False)
LOCAL = Guard(loopback=True, own=("127.0.0.1", 8000))


@pytest.mark.parametrize(
    ("address", "public", "local"),
    [
        ("93.184.216.34", None, None),
        ("2606:2800:220:1::1", None, None),
        ("127.0.0.1", "loopback", None),
        ("127.9.9.9", "loopback", None),
        ("::1", "loopback", None),
        ("::ffff:127.0.0.1", "loopback", None),
        ("10.1.2.3", "private", None),
        ("172.16.0.1", "private", None),
        ("192.168.1.1", "private", None),
        ("fd00::1", "private", None),
        ("100.64.0.1", "not a public address", None),
        ("169.254.169.254", "link-local", "link-local"),
        ("fe80::1", "link-local", "link-local"),
        ("224.0.0.1", "multicast", "multicast"),
        ("0.0.0.0", "unspecified", "unspecified"),
        ("::", "unspecified", "unspecified"),
        ("255.255.255.255", "broadcast", "broadcast"),
    ],
)
def test_each_kind_of_address(address: str, public: str | None, local: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert PUBLIC.refusal(ip, 80) == public
    assert LOCAL.refusal(ip, 80) == local


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:7f00:1]"])
def test_every_spelling_of_loopback_is_loopback(host: str) -> None:
    ip = literal(host)
    assert ip is not None
    assert PUBLIC.refusal(ip, 80) == "loopback"


def test_the_service_itself_is_refused_even_locally() -> None:
    assert LOCAL.refusal(ipaddress.ip_address("127.0.0.1"), 8000) == "the service itself"
    assert LOCAL.refusal(ipaddress.ip_address("127.0.0.2"), 8000) == "the service itself"
    assert LOCAL.refusal(ipaddress.ip_address("127.0.0.1"), 8001) is None


def test_allowed_ranges_open_what_is_refused() -> None:
    guard = Guard(loopback=False, allow=["10.0.0.0/8", "169.254.0.0/16"])
    assert guard.refusal(ipaddress.ip_address("10.9.8.7"), 80) is None
    assert guard.refusal(ipaddress.ip_address("169.254.1.1"), 80) is None
    assert guard.refusal(ipaddress.ip_address("192.168.0.1"), 80) == "private"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://user:pw@example.com/x", "credentials"),
        ("https://token@example.com/x", "credentials"),
        ("ftp://example.com/x", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
        ("http:///no-host", "http(s)"),
        ("http://example.com/a b", "spaces"),
        ("http://example.com/\x00", "control"),
        ("http://example.com:99999/", "valid URL"),
    ],
)
def test_urls_that_are_not_callbacks(url: str, fragment: str) -> None:
    problem = syntax_problem(url)
    assert problem is not None
    assert fragment in problem


class Script:
    """A resolver that answers what it is told to, and remembers what it was asked."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers, self.asked = list(answers), list[str]()

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0)


async def test_a_name_rebound_to_loopback_after_creation_is_refused_when_sending() -> None:
    resolver = Script(["93.184.216.34"], ["127.0.0.1"])
    guard = Guard(loopback=False, resolver=resolver)
    await guard.at_creation("http://rebind.example/hook")
    with pytest.raises(Refused, match=r"rebind.example \(127.0.0.1\): loopback"):
        await guard.pinned("http://rebind.example/hook")


async def test_a_name_pointing_inside_is_refused_at_creation() -> None:
    guard = Guard(loopback=False, resolver=Script(["10.0.0.5", "93.184.216.34"]))
    with pytest.raises(Refused, match="private"):
        await guard.at_creation("https://inside.example/hook")


async def test_the_outbox_sends_to_the_address_it_checked_with_the_host_it_was_given() -> None:
    """End to end in the outbox: the first delivery goes to the checked address (Host header and
    TLS name kept); after the name is re-pointed inside, the next attempt is refused and sends
    nothing."""
    sent: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(500)  # so that it is tried again

    store = MemoryStore()
    now = time.time()
    timeline = draw_timeline(SimulationConfig(error_rate=0), __import__("random").Random(1), now - 10, 1)
    await store.add(
        NewJob(
            id="job_" + "a" * 32,
            language="fr",
            video_seconds=1,
            callback_url="https://hooks.example:8443/in",
            timeline=timeline,
        )
    )
    resolver = Script(["93.184.216.34"], ["127.0.0.1"])

    async def describe(job_id: str) -> tuple[Job, str]:
        return Job(result="completed", id=job_id), ""

    async def secrets(tenant: str) -> list[str]:
        return ["whsec_" + "A" * 32]

    outbox = Outbox(
        store,
        WebhookConfig(retry_delays=(0.0, 0.0)),
        describe,
        secrets,
        transport=httpx2.MockTransport(record),
        guard=Guard(loopback=False, resolver=resolver),
    )
    async with httpx2.AsyncClient(transport=outbox.transport) as http:
        [first] = await store.claim_deliveries(time.time(), 10, time.time() + 30, outbox.owner)
        await outbox._deliver(http, first)
        [again] = await store.claim_deliveries(time.time(), 10, time.time() + 30, outbox.owner)
        await outbox._deliver(http, again)
    [request] = sent
    assert str(request.url) == "https://93.184.216.34:8443/in"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"
    delivery = await store.delivery("job_" + "a" * 32)
    assert delivery is not None
    assert delivery.attempts == 2
    assert delivery.last_error is not None
    assert "loopback" in delivery.last_error


@settings(max_examples=300, deadline=None)
@given(st.from_regex(HTTP_URL_RE, fullmatch=True))
def test_every_url_the_pattern_admits_is_a_good_url(url: str) -> None:
    """The document's ``HTTP_URL_PATTERN`` admits no URL the service would refuse (the service
    checks the same pattern, so it refuses none the pattern admits either)."""
    assert syntax_problem(url) is None, url


@settings(max_examples=300, deadline=None)
@given(st.from_regex(LANGUAGE_PATTERN, fullmatch=True))
def test_every_language_the_pattern_admits_is_one_the_service_knows(code: str) -> None:
    assert code.lower() in {known.lower() for known in LANGUAGES}
