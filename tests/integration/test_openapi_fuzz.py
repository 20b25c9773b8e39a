"""The service keeps to its own ``/openapi.json``: Schemathesis fuzzes every operation it lists.

Each operation gets Schemathesis's example, coverage (boundaries, missing and wrong parameters,
methods the path does not list) and fuzzing phases, positive and negative data, and every one of
its checks (``checks.py``'s and the Open API ones: no server error; status codes, content types,
headers and bodies as documented; schema-valid requests accepted, schema-invalid ones refused;
405 with ``Allow`` for other methods; auth not ignored; …). Two services: an open sandbox, and
one with an API key (a tenant) and a rate limit, whose document says so (security, 401,
``RateLimit`` headers).

What the services are started with, and why:

- ``--max-wait 0.2``: ``Prefer: wait=N`` holds an answer N seconds (60 at most by default); the
  fuzzer sends any N. The hold is capped, as the document says, so each case ends quickly.
- ``--stream-lifetime 0``: an event stream lasts until its job ends or its lifetime; at 0 each
  stream sends what it has now, then its ``retry:`` hint, and ends, so its events can be read
  and checked against their schemas.
- ``Vtrans-Fault`` asks for a failure by design (a 500, a reset, a 10-minute drip): every case
  sends ``latency:0``, the fault that changes nothing, so the header's path is taken; the
  faults themselves are ``test_faults.py``'s.

A few valid requests are refused for what the service knows rather than for their shape, which
no schema can say: an ``Idempotency-Key`` used before for another job, a ``callback_url`` whose
destination the guard refuses (``0.0.0.0``, link-local). For ``POST /v1/jobs`` only, a 422 is
allowed for such data, and :func:`refused_for_state_only` makes sure it is one of those two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from vtrans.server.config import ServerConfig
from vtrans.server.http.openapi import document
from vtrans.server.tenants import parse_keys

if TYPE_CHECKING:
    from conftest import ServiceFactory, ServiceProcess

pytestmark = pytest.mark.integration

#: Examples per operation and phase: the whole module takes about half a minute.
MAX_EXAMPLES = 12
KEY = "fuzz-key-0123456789"
RATE_LIMIT = "100000/minute"
FLAGS = ("--max-wait", "0.2", "--stream-lifetime", "0")
CONFIG = f"""
[generation]
max-examples = {MAX_EXAMPLES}

[parameters]
"header.Vtrans-Fault" = "latency:0"

[[operations]]
include-name = "POST /v1/jobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""
#: The problems a schema-valid job may get for the service's state rather than its shape.
STATEFUL_REFUSALS = {"urn:vtrans:problem:idempotency-key-reused", "urn:vtrans:problem:callback-refused"}


def refused_for_state_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request refused with a 422 was refused for one of :data:`STATEFUL_REFUSALS`."""
    meta = case.meta
    if response.status_code == 422 and meta is not None and meta.generation.mode.is_positive:
        kind = response.json().get("type")
        assert kind in STATEFUL_REFUSALS, f"schema-valid data refused as {kind}: {response.text}"
    return None


def _schema(config: ServerConfig, extra: str = "") -> Any:
    """The document a service started with ``config`` serves (``test_openapi_exact.py`` checks
    that it does): built here, so that pytest knows the operations before any service starts."""
    fuzzing = schemathesis.Config.from_str(CONFIG + extra)
    return schemathesis.openapi.from_dict(document(config), config=fuzzing)


OPEN = _schema(ServerConfig())
# The key is the schema's (its ``bearer`` scheme), not a header added to every case: Schemathesis
# must know it to send it, and to leave it out where a case is about its absence (a 401).
KEYED = _schema(
    ServerConfig(api_keys=parse_keys([f"fuzz:{KEY}"]), rate_limit=RATE_LIMIT),
    f'\n[auth.openapi.bearer]\nbearer = "{KEY}"\n',
)
FUZZ = settings(deadline=None, max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def open_service(module_service_factory: ServiceFactory) -> ServiceProcess:
    return module_service_factory(*FLAGS)


@pytest.fixture(scope="module")
def keyed_service(module_service_factory: ServiceFactory) -> ServiceProcess:
    return module_service_factory(*FLAGS, "--api-key", f"fuzz:{KEY}", "--rate-limit", RATE_LIMIT)


@OPEN.parametrize()
@FUZZ
def test_the_open_sandbox_keeps_to_its_document(case: Any, open_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=open_service.url, additional_checks=[refused_for_state_only])


@KEYED.parametrize()
@FUZZ
def test_a_tenant_keeps_to_its_document(case: Any, keyed_service: ServiceProcess) -> None:
    case.call_and_validate(base_url=keyed_service.url, additional_checks=[refused_for_state_only])


def test_no_case_made_a_service_fail(open_service: ServiceProcess, keyed_service: ServiceProcess) -> None:
    """Belt and braces (runs last in this module): neither service logged an unhandled error."""
    for service in (open_service, keyed_service):
        log = service.log_text()
        assert "unhandled error" not in log
        assert "Traceback" not in log
