"""The service's log lines: text for people, or one JSON object per line (``--log-format json``).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``event`` (the message), and,
when the line is written while a request is served, that request's ``request_id``, ``method``,
``route`` (the template, e.g. ``/v1/jobs/{job_id}``) and ``job_id``; an access line adds
``status`` and ``duration_ms``. A line about a job outside a request (a webhook) has its
``job_id`` too. Which request is being served is a context variable set by the HTTP layer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import msgspec

#: The ASGI scope of the request being served in this context, if any.
CURRENT_REQUEST: ContextVar[MutableMapping[str, Any] | None] = ContextVar("vtrans_request", default=None)
#: Where the HTTP layer keeps a request's id in its scope.
REQUEST_ID_KEY = "vtrans.request_id"
FORMATS = ("text", "json")
_JOB_ID = re.compile(r"\bjob_[0-9a-f]{32}\b")
#: Attributes every ``LogRecord`` has: anything else was passed with ``extra=`` and is kept.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def request_fields(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """What a log line says about the request whose scope this is."""
    fields: dict[str, Any] = {"request_id": scope.get(REQUEST_ID_KEY), "method": scope.get("method")}
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is not None:
        fields["route"] = path
    job_id = scope.get("path_params", {}).get("job_id")
    if job_id is not None:
        fields["job_id"] = job_id
    return fields


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        scope = CURRENT_REQUEST.get()
        if scope is not None:
            line.update(request_fields(scope))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if "job_id" not in line:
            found = _JOB_ID.search(line["event"])
            if found is not None:
                line["job_id"] = found.group()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line, enc_hook=str).decode()


def uvicorn_log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's own loggers in ``log_format`` (``None`` keeps uvicorn's default, for text)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JSONFormatter"}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["json"], "level": level.upper(), "propagate": False},
        },
    }
