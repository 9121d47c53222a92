"""The ``touchpoint`` command: one subcommand per process of docs/architecture.md.

Each subcommand only parses options, loads and validates the config, and hands over to the
package that does the work, so the CLI stays thin and every command is testable in-process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import click

from common import config as configuration
from common import logs
from common.errors import ConfigError, TouchpointError

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="TOUCHPOINT_CONFIG",
    help="TOML config file (env TOUCHPOINT_CONFIG). Every key can be overridden by TOUCHPOINT_{SECTION}_{KEY}.",
)


def _load(loader: Any, path: str | None) -> Any:
    try:
        loaded = loader(path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    logs.configure(loaded.log.level, loaded.log.format)
    return loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="touchpoint")
def main() -> None:
    """Touchpoint: RFID fitting-room mirrors and kiosks, synced to a customer-experience HQ.

    \b
    Start here:
      touchpoint demo                 the whole system on this machine
      touchpoint edge --config examples/mirror.toml
      touchpoint hq --config examples/hq.toml
    """


@main.command()
@CONFIG_OPTION
def edge(config_path: str | None) -> None:
    """Run a kiosk or mirror: the web screens plus the RFID and camera readers.

    \b
    Example:
      touchpoint edge --config /etc/touchpoint/edge.toml
      TOUCHPOINT_WEB_LISTEN=0.0.0.0:8080 touchpoint edge --config edge.toml
    """
    from kiosk.server import serve

    serve(_load(configuration.load_edge, config_path))


@main.command("sync")
@CONFIG_OPTION
def sync_command(config_path: str | None) -> None:
    """Run the sync agent: outbox to HQ over MQTT, and HQ's downlink back.

    \b
    Example:
      touchpoint sync --config /etc/touchpoint/edge.toml
    """
    from sync.agent import run

    run(_load(configuration.load_edge, config_path))


@main.group(invoke_without_command=True)
@CONFIG_OPTION
@click.option(
    "--role",
    type=click.Choice(["all", "ingest", "web"]),
    default="all",
    show_default=True,
    help="ingest: only the MQTT ingest workers; web: only the API and dashboard.",
)
@click.pass_context
def hq(ctx: click.Context, config_path: str | None, role: str) -> None:
    """Run HQ: the MQTT ingestor, the HQ API and the dashboard.

    \b
    Example:
      touchpoint hq --config /etc/touchpoint/hq.toml
      touchpoint hq --config hq.toml --role ingest    (one of several ingest processes)
    """
    ctx.obj = config_path
    if ctx.invoked_subcommand is None:
        from hq.server import serve

        serve(_load(configuration.load_hq, config_path), role)


@hq.command()
@CONFIG_OPTION
@click.pass_context
def recompute(ctx: click.Context, config_path: str | None) -> None:
    """Recompute recommendations and publish each store's retained message now.

    Reads every stored event, rebuilds item-to-item pairs, segments and (for consenting
    customers only) personal size hints, and publishes touchpoint/v1/{store}/recommendations,
    retained, QoS 1. `touchpoint hq` also does this every [hq] recompute_interval_s.

    \b
    Example:
      touchpoint hq recompute --config /etc/touchpoint/hq.toml
    """
    from datetime import datetime, timezone

    from hq.mqtt import publisher
    from hq.storage import open_storage

    config = _load(configuration.load_hq, config_path or ctx.obj)
    try:
        catalog = publisher.catalog_of(config)
        with open_storage(config.database.url) as storage:
            steps = 2 * len(storage.stores()) or 1  # each store is built, then published
            with click.progressbar(length=steps, label="recommendations: build and publish per store") as bar:
                done = publisher.recompute(
                    config,
                    storage,
                    catalog,
                    datetime.now(timezone.utc),
                    building=lambda names: _advancing(bar, names),
                    publishing=lambda names: _advancing(bar, names),
                )
    except TouchpointError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"published recommendations to {len(done.stores)} store(s); "
        f"personal hints for {done.customers} consenting customer(s)"
    )


def _advancing(bar: Any, names: Iterable[str]) -> Iterator[str]:
    """Advance a click progress bar over the stores as they are done."""
    for name in list(names):
        yield name
        bar.update(1)


@hq.command()
@CONFIG_OPTION
@click.pass_context
def migrate(ctx: click.Context, config_path: str | None) -> None:
    """Bring HQ's database up to this version: schema migrations, then what they leave to do.

    Migrations run by themselves whenever HQ opens its database; this command also builds what
    an upgrade needs from the events already stored (identity from the link events, touchpoint
    rollups from every event), with progress bars, so that the first `touchpoint hq` after an
    upgrade starts at once. Safe to run again: it does nothing when there is nothing to do.

    \b
    Example:
      touchpoint hq migrate --config /etc/touchpoint/hq.toml
    """
    from hq.storage import open_storage

    config = _load(configuration.load_hq, config_path or ctx.obj)
    try:
        with open_storage(config.database.url) as storage:
            with click.progressbar(length=storage.pending_backfill(), label="identity from stored link events") as bar:
                identity = storage.backfill_identity(lambda count: bar.update(count - bar.pos))
            with click.progressbar(length=storage.pending_rollups(), label="rollups, hours of stored events") as bar:
                rollups = storage.backfill_rollups(lambda count: bar.update(count - bar.pos))
    except TouchpointError as error:
        raise click.ClickException(str(error)) from None
    if identity:
        click.echo("identity built from the stored link events")
    if rollups:
        click.echo("touchpoint rollups built from the stored events")
    if not identity and not rollups:
        click.echo("nothing to do: the database is current")


@hq.command("device-key")
@click.argument("store")
@click.argument("device")
@CONFIG_OPTION
@click.pass_context
def device_key(ctx: click.Context, store: str, device: str, config_path: str | None) -> None:
    """Print the key a device checks HQ's signed acks with (its [mqtt] ack_key), as the last word.

    The key is derived from [hq] ack_secret, so HQ needs no list of devices; keep it as secret
    as the device's MQTT password.

    \b
    Example:
      touchpoint hq device-key berlin-01 mirror-03 --config /etc/touchpoint/hq.toml
    """
    from contract.acks import device_key as derive

    config = _load(configuration.load_hq, config_path or ctx.obj)
    for name, value in (("STORE", store), ("DEVICE", device)):
        if configuration.identifier(value):
            raise click.BadParameter(f"{value!r}: {configuration.identifier(value)}", param_hint=name)
    if not config.hq.ack_secret:
        raise click.ClickException("[hq] ack_secret is empty: set a secret of at least 32 characters first")
    click.echo(f"[mqtt] ack_key for {store}/{device}: {derive(config.hq.ack_secret, store, device)}")


@hq.command("add-user")
@click.argument("name")
@click.password_option(help="The new user's password (asked twice when not given).")
def add_user(name: str, password: str) -> None:
    """Print a dashboard user line (name = password hash) to paste under [hq.users].

    \b
    Example:
      touchpoint hq add-user anna >> /etc/touchpoint/hq.toml   (below the [hq.users] table)
    """
    from hq.web.users import hash_line

    try:
        click.echo(hash_line(name, password))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command("simulate-reader")
@click.option(
    "--protocol",
    type=click.Choice(["m100", "mercury", "id12", "rdm6300"]),
    default="m100",
    show_default=True,
    help="Which reader's frames to write.",
)
@click.option(
    "--scenario", default="fitting-room", show_default=True, help="Built-in scenario name, or a JSON scenario file."
)
@click.option("--rate", type=float, default=20.0, show_default=True, help="Reads per second while tags are present.")
@click.option(
    "--noise",
    type=float,
    default=0.01,
    show_default=True,
    help="Share of frames corrupted or followed by garbage bytes.",
)
@click.option("--loop/--once", default=True, show_default=True, help="Repeat the scenario.")
def simulate_reader(protocol: str, scenario: str, rate: float, noise: float, loop: bool) -> None:
    """A virtual RFID reader writing real protocol frames to a pseudo-terminal.

    Prints the pty's path; point a config's [reader] url at it.

    \b
    Example:
      touchpoint simulate-reader --protocol m100
      /dev/pts/5
      TOUCHPOINT_READER_URL=/dev/pts/5 touchpoint edge --config examples/mirror.toml
    """
    from drivers.simulator import run_cli

    run_cli(protocol=protocol, scenario=scenario, rate=rate, noise=noise, loop=loop)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default="var/demo",
    show_default=True,
    help="Where the demo keeps its databases and configs between runs.",
)
@click.option("--fresh", is_flag=True, help="Start from scratch instead of where the last run stopped.")
@click.option(
    "--port",
    type=int,
    default=8080,
    show_default=True,
    help="First port; the demo uses four consecutive ones (mirror, kiosk, HQ, broker).",
)
@click.option(
    "--broker",
    type=click.Choice(["auto", "mosquitto", "embedded"]),
    default="auto",
    show_default=True,
    envvar="TOUCHPOINT_DEMO_BROKER",
    help="auto: Mosquitto when installed, else the embedded amqtt (MQTT 3.1.1).",
)
def demo(workdir: str, fresh: bool, port: int, broker: str) -> None:
    """The whole system on this machine: broker, HQ, a kiosk and a mirror with simulated readers.

    \b
    Example:
      touchpoint demo            then open the printed URLs; Ctrl-C stops everything
      touchpoint demo --fresh    forget the previous run
      touchpoint demo --broker embedded --port 9000
    """
    from touchpoint.demo import run

    sys.exit(run(workdir=workdir, fresh=fresh, port=port, broker=broker))


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--calibrate",
    "zone",
    metavar="ZONE",
    help="Instead of the checks: read for --seconds, show each antenna's RSSI spread, propose min_rssi for ZONE.",
)
@click.option("--seconds", type=float, default=30.0, show_default=True, help="How long --calibrate reads.")
def doctor(config_path: str | None, as_json: bool, zone: str | None, seconds: float) -> None:
    """Check this device: config, reader port, camera, broker, TLS files, clock, disk, outbox.

    Prints OK, WARN or FAIL with what to do for each; exits 1 when anything failed. Run it as
    the service's user, since permissions are part of what it checks. With --calibrate, stop
    touchpoint edge first, put the garments in the zone, and it proposes the zone's min_rssi.

    \b
    Example:
      sudo -u touchpoint /opt/touchpoint/bin/touchpoint doctor --config /etc/touchpoint/edge.toml
      touchpoint doctor --config edge.toml --json
      touchpoint doctor --config edge.toml --calibrate cabin-1 --seconds 20
    """
    from datetime import datetime, timezone

    if zone is not None:
        from touchpoint import calibrate

        report, code = calibrate.run(config_path, zone, seconds)
        click.echo(report)
        sys.exit(code)

    from touchpoint import doctor as checks

    findings = checks.examine(config_path, datetime.now(timezone.utc))
    click.echo(checks.render_json(findings) if as_json else checks.render_text(findings))
    sys.exit(checks.exit_code(findings))
