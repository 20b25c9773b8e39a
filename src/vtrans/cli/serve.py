"""``vtrans serve``: run the sandbox service. Every flag also reads a ``VTRANS_*`` variable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from vtrans.server.simulation import Hints


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", envvar="VTRANS_HOST", help="Address to listen on.")
@click.option("--port", default=8000, type=click.IntRange(0, 65535), envvar="VTRANS_PORT")
@click.option(
    "--store",
    type=click.Choice(["sqlite", "memory"]),
    default="sqlite",
    envvar="VTRANS_STORE",
    help="Where jobs live: a durable SQLite file, or memory.",
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
@click.option("--seed", type=int, envvar="VTRANS_SEED", help="Make every timeline reproducible.")
@click.option("--api-key", envvar="VTRANS_API_KEY", help="Require 'Authorization: Bearer KEY' on /v1/*.")
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
    "--webhook-timeout",
    default=15.0,
    type=click.FloatRange(0.1),
    envvar="VTRANS_WEBHOOK_TIMEOUT",
    help="How long a webhook receiver has to answer.",
)
@click.option("--access-log/--no-access-log", default=False, envvar="VTRANS_ACCESS_LOG")
def serve(
    host: str,
    port: int,
    store: str,
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
    seed: int | None,
    api_key: str | None,
    max_wait: float,
    webhook_secret: str | None,
    webhook_retry_delays: str,
    webhook_timeout: float,
    access_log: bool,
) -> None:
    """Run the simulated translation service."""
    from vtrans.server.config import ServerConfig
    from vtrans.server.run import serve as run
    from vtrans.server.simulation import SimulationConfig
    from vtrans.server.webhooks import WebhookConfig, check_secret

    if delay is not None:
        delay_min = delay_max = delay
    try:
        delays = _delays(webhook_retry_delays)
        if webhook_secret:
            check_secret(webhook_secret)
        config = ServerConfig(
            max_wait=max_wait,
            webhooks=WebhookConfig(
                secret=webhook_secret or None, retry_delays=delays, timeout=webhook_timeout
            ),
            store=store,
            db_path=db_path,
            status_delay_min=delay_min,
            status_delay_max=delay_max,
            reset_status=reset_status,
            seed=seed,
            api_key=api_key or None,
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
    run(config, host, port, access_log=access_log)


def _delays(text: str) -> tuple[float, ...]:
    """Comma-separated seconds, each from 0 to 7 days."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        delays = (-1.0,)
    if any(not 0 <= d <= 7 * 86400 for d in delays):
        raise ValueError(f"--webhook-retry-delays needs comma-separated seconds (0 to 7 days), not {text!r}")
    return delays
