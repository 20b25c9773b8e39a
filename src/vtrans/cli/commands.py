"""The ``vtrans`` commands. Every flag also reads a ``VTRANS_*`` environment variable."""

from __future__ import annotations

import click

from vtrans import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="vtrans")
def cli() -> None:
    """Submit video translations and wait for them well; or run the sandbox service."""


@cli.command()
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
    help="Log-normal sigma of the estimates' error.",
)
@click.option("--seed", type=int, envvar="VTRANS_SEED", help="Make every timeline reproducible.")
@click.option("--api-key", envvar="VTRANS_API_KEY", help="Require 'Authorization: Bearer KEY' on /v1/*.")
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
    seed: int | None,
    api_key: str | None,
    access_log: bool,
) -> None:
    """Run the simulated translation service."""
    from vtrans.server.config import ServerConfig
    from vtrans.server.run import serve as run
    from vtrans.server.simulation import SimulationConfig

    if delay is not None:
        delay_min = delay_max = delay
    try:
        config = ServerConfig(
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
            ),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run(config, host, port, access_log=access_log)
