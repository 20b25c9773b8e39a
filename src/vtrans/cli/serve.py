"""``vtrans serve``: run the sandbox service. Every flag also reads a ``VTRANS_*`` variable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from vtrans.server.simulation import Hints


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", envvar="VTRANS_HOST", help="Address to listen on.")
@click.option("--port", default=8000, type=click.IntRange(0, 65535), envvar="VTRANS_PORT")
@click.option(
    "--store",
    default="sqlite",
    envvar="VTRANS_STORE",
    metavar="sqlite|memory|postgresql://USER@HOST:PORT/DB",
    help="Where jobs live: a durable SQLite file (one process), memory, or PostgreSQL (many processes).",
)
@click.option(
    "--workers",
    default=1,
    type=click.IntRange(1, 256),
    envvar="VTRANS_WORKERS",
    help="Processes serving the port (more than 1 needs --store postgresql://…).",
)
@click.option(
    "--db",
    "db_path",
    default="vtrans.db",
    envvar="VTRANS_DB",
    type=click.Path(dir_okay=False),
    help="The SQLite file (with --store sqlite).",
)
@click.option(
    "--delay",
    type=click.FloatRange(0),
    envvar="VTRANS_DELAY",
    help="GET /status stays pending exactly this long (sets both min and max).",
)
@click.option(
    "--delay-min",
    default=5.0,
    type=click.FloatRange(0),
    envvar="VTRANS_DELAY_MIN",
    help="GET /status: shortest random delay, in seconds.",
)
@click.option(
    "--delay-max",
    default=15.0,
    type=click.FloatRange(0),
    envvar="VTRANS_DELAY_MAX",
    help="GET /status: longest random delay, in seconds.",
)
@click.option(
    "--reset-status",
    is_flag=True,
    envvar="VTRANS_RESET_STATUS",
    help="Start a new GET /status job instead of keeping the stored one.",
)
@click.option(
    "--error-rate",
    default=0.1,
    type=click.FloatRange(0, 1),
    envvar="VTRANS_ERROR_RATE",
    help="Probability that a job (and GET /status) ends in error.",
)
@click.option(
    "--base-seconds",
    default=3.0,
    type=click.FloatRange(0),
    envvar="VTRANS_BASE_SECONDS",
    help="Fixed part of every job's duration.",
)
@click.option(
    "--speed",
    "seconds_per_video_second",
    default=0.25,
    type=click.FloatRange(0),
    envvar="VTRANS_SECONDS_PER_VIDEO_SECOND",
    help="Processing seconds per second of video.",
)
@click.option(
    "--duration-spread",
    default=0.25,
    type=click.FloatRange(0),
    envvar="VTRANS_DURATION_SPREAD",
    help="Log-normal sigma of job durations.",
)
@click.option(
    "--estimate-spread",
    default=0.15,
    type=click.FloatRange(0),
    envvar="VTRANS_ESTIMATE_SPREAD",
    help="Log-normal sigma of the estimates' error, one factor per job.",
)
@click.option(
    "--estimate-noise",
    default=0.12,
    type=click.FloatRange(0),
    envvar="VTRANS_ESTIMATE_NOISE",
    help="Log-normal sigma of the estimate's wobble, drawn anew for every answer (0: off).",
)
@click.option(
    "--estimate-drift",
    default=0.25,
    type=click.FloatRange(0),
    envvar="VTRANS_ESTIMATE_DRIFT",
    help="Sigma of a job's log error at its start, fading to 0 at its end (0: off).",
)
@click.option(
    "--stall-rate",
    default=0.1,
    type=click.FloatRange(0, 1),
    envvar="VTRANS_STALL_RATE",
    help="Share of jobs that stall near their end, past their estimate (0: none).",
)
@click.option(
    "--stall-max",
    default=0.5,
    type=click.FloatRange(0, 1, max_open=True),
    envvar="VTRANS_STALL_MAX",
    help="Longest stall, as a share of the job's duration.",
)
@click.option(
    "--hints",
    type=click.Choice(["estimate", "retry-after", "none"]),
    default="estimate",
    envvar="VTRANS_HINTS",
    help="What pending jobs tell: the estimate and Retry-After, only Retry-After, or nothing.",
)
@click.option(
    "--retry-after-max",
    default=60.0,
    type=click.FloatRange(1, 86400),
    envvar="VTRANS_RETRY_AFTER_MAX",
    show_default=True,
    help="Longest Retry-After sent with a pending job, in seconds: a longer wait says only this.",
)
@click.option("--seed", type=int, envvar="VTRANS_SEED", help="Make every timeline reproducible.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    envvar=["VTRANS_API_KEYS", "VTRANS_API_KEY"],
    metavar="[NAME:]KEY",
    help="An API key, one tenant each (repeat the flag; the variable takes several, space- or "
    "comma-separated). With keys, /v1/* needs 'Authorization: Bearer KEY' and each tenant sees "
    "only its jobs.",
)
@click.option(
    "--api-keys-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="VTRANS_API_KEYS_FILE",
    help="A file of [NAME:]KEY lines (blank lines and # comments skipped).",
)
@click.option(
    "--max-wait",
    default=60.0,
    type=click.FloatRange(0, 3600),
    envvar="VTRANS_MAX_WAIT",
    help="Longest long-poll hold (Prefer: wait=N), in seconds.",
)
@click.option(
    "--webhook-secret",
    envvar="VTRANS_WEBHOOK_SECRET",
    help="'whsec_' + base64 key that signs webhooks (default: generated once, stored).",
)
@click.option(
    "--webhook-retry-delays",
    envvar="VTRANS_WEBHOOK_RETRY_DELAYS",
    default="5,300,1800,7200,18000,36000,50400,72000,86400",
    help="Seconds to wait before each webhook retry, comma-separated.",
)
@click.option(
    "--webhook-secret-grace",
    default=86400.0,
    type=click.FloatRange(0),
    envvar="VTRANS_WEBHOOK_SECRET_GRACE",
    help="After a rotation, how long the previous webhook secret keeps signing too, in seconds.",
)
@click.option(
    "--webhook-timeout",
    default=15.0,
    type=click.FloatRange(0.1),
    envvar="VTRANS_WEBHOOK_TIMEOUT",
    help="How long a webhook receiver has to answer.",
)
@click.option(
    "--rate-limit",
    envvar="VTRANS_RATE_LIMIT",
    metavar="N/PERIOD",
    help="Requests per tenant (per client address without keys), e.g. 100/minute; off by default.",
)
@click.option(
    "--faults",
    default="",
    envvar="VTRANS_FAULTS",
    metavar="KIND[:PARAM]@RATE,…",
    help="Inject faults at random (reproducible with --seed): 500, 503, 429, reset, latency, 503-after, "
    "truncate, drip; e.g. 503@0.05,latency:2@0.1. A request's Vtrans-Fault header asks for one exactly.",
)
@click.option(
    "--allow-callback",
    "allow_callbacks",
    multiple=True,
    envvar="VTRANS_ALLOW_CALLBACKS",
    metavar="CIDR",
    help="Open a range to webhooks (repeatable), e.g. 10.0.0.0/8 for receivers on a private network.",
)
@click.option(
    "--local-callbacks/--no-local-callbacks",
    default=None,
    envvar="VTRANS_LOCAL_CALLBACKS",
    help="Allow webhooks to loopback and private addresses.  [default: when --host is a loopback address]",
)
@click.option(
    "--header-timeout",
    default=10.0,
    type=click.FloatRange(0.1),
    envvar="VTRANS_HEADER_TIMEOUT",
    help="A request's line and headers must arrive within this many seconds (else 408, closed).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    type=click.FloatRange(0.1),
    envvar="VTRANS_BODY_TIMEOUT",
    help="A request's body must arrive within this many seconds of its headers.",
)
@click.option(
    "--keep-alive-timeout",
    default=5.0,
    type=click.FloatRange(0.1),
    envvar="VTRANS_KEEP_ALIVE_TIMEOUT",
    help="An idle keep-alive connection is closed after this many seconds.",
)
@click.option(
    "--max-connections",
    default=25_000,
    type=click.IntRange(1),
    envvar="VTRANS_MAX_CONNECTIONS",
    help="Open connections per process; more get a 503 problem.",
)
@click.option(
    "--stream-lifetime",
    default=300.0,
    type=click.FloatRange(0, 86400),
    envvar="VTRANS_STREAM_LIFETIME",
    help="Longest event stream, in seconds: then it ends with a retry: hint (the client reconnects).",
)
@click.option(
    "--max-held",
    default=20_000,
    type=click.IntRange(1),
    envvar="VTRANS_MAX_HELD",
    help="Held waits (long-polls, batch waits, event streams) per process; more get a 503 problem.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    envvar="VTRANS_ACCESS_LOG",
    help="Log one line per request (method, path, status, duration, request id).",
)
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(["text", "json"]),
    envvar="VTRANS_LOG_FORMAT",
    help="Log lines for people, or one JSON object per line.",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    envvar="VTRANS_METRICS",
    help="Keep Prometheus metrics and serve them at /metrics.",
)
def serve(
    host: str,
    port: int,
    store: str,
    workers: int,
    db_path: str,
    delay: float | None,
    delay_min: float,
    delay_max: float,
    reset_status: bool,
    error_rate: float,
    base_seconds: float,
    seconds_per_video_second: float,
    duration_spread: float,
    estimate_spread: float,
    estimate_noise: float,
    estimate_drift: float,
    stall_rate: float,
    stall_max: float,
    hints: Hints,
    retry_after_max: float,
    seed: int | None,
    api_keys: tuple[str, ...],
    api_keys_file: str | None,
    max_wait: float,
    webhook_secret: str | None,
    webhook_retry_delays: str,
    webhook_secret_grace: float,
    webhook_timeout: float,
    rate_limit: str | None,
    faults: str,
    allow_callbacks: tuple[str, ...],
    local_callbacks: bool | None,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: float,
    max_connections: int,
    max_held: int,
    stream_lifetime: float,
    access_log: bool,
    log_format: str,
    metrics: bool,
) -> None:
    """Run the simulated translation service.

    Exits 6 if it cannot start (its port is taken, its store cannot be used), 2 for a bad flag,
    130 when Ctrl-C stopped it (after draining).
    """
    from vtrans.cli.errors import Exit
    from vtrans.server.config import (
        CallbackConfig,
        ConnectionConfig,
        ServerConfig,
        StreamConfig,
        WebhookConfig,
    )
    from vtrans.server.run import StartupError
    from vtrans.server.run import serve as run
    from vtrans.server.simulation import SimulationConfig
    from vtrans.server.tenants import check_secret, parse_keys

    if delay is not None:
        delay_min = delay_max = delay
    try:
        delays = _delays(webhook_retry_delays)
        if webhook_secret:
            check_secret(webhook_secret)
        config = ServerConfig(
            max_wait=max_wait,
            retry_after_max=retry_after_max,
            max_held=max_held,
            stream=StreamConfig(max_lifetime=stream_lifetime),
            rate_limit=rate_limit,
            faults=faults,
            callbacks=CallbackConfig(
                allow=tuple(cidr for flag in allow_callbacks for cidr in flag.split(",") if cidr.strip()),
                local=local_callbacks,
            ),
            connections=ConnectionConfig(
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                keep_alive_timeout=keep_alive_timeout,
                max_connections=max_connections,
            ),
            webhooks=WebhookConfig(
                secret=webhook_secret or None,
                retry_delays=delays,
                timeout=webhook_timeout,
                secret_grace=webhook_secret_grace,
            ),
            store=store,
            db_path=db_path,
            status_delay_min=delay_min,
            status_delay_max=delay_max,
            reset_status=reset_status,
            seed=seed,
            api_keys=parse_keys(_key_specs(api_keys, api_keys_file)),
            metrics=metrics,
            log_format=log_format,
            access_log=access_log,
            simulation=SimulationConfig(
                base_seconds=base_seconds,
                seconds_per_video_second=seconds_per_video_second,
                duration_spread=duration_spread,
                error_rate=error_rate,
                estimate_spread=estimate_spread,
                estimate_noise=estimate_noise,
                estimate_drift=estimate_drift,
                stall_rate=stall_rate,
                stall_max=stall_max,
                hints=hints,
            ),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        run(config, host, port, workers=workers)
    except (StartupError, ValueError) as exc:
        click.echo(f"vtrans serve: {exc}", err=True)
        raise SystemExit(Exit.START_FAILED) from None
    except KeyboardInterrupt:
        raise SystemExit(Exit.INTERRUPTED) from None  # not click's "Aborted!" and 1: it stopped as asked


def _key_specs(flags: tuple[str, ...], path: str | None) -> list[str]:
    """The ``[NAME:]KEY`` items of the flags (commas split them too) and of the file."""
    specs = [item for flag in flags for item in flag.split(",")]
    if path is not None:
        lines = Path(path).read_text().splitlines()
        specs += [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return specs


def _delays(text: str) -> tuple[float, ...]:
    """Comma-separated seconds, each from 0 to 7 days."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        delays = (-1.0,)
    if any(not 0 <= d <= 7 * 86400 for d in delays):
        raise ValueError(f"--webhook-retry-delays needs comma-separated seconds (0 to 7 days), not {text!r}")
    return delays
