"""An embedded MQTT 3.1.1 broker (amqtt) for ``touchpoint demo`` on a machine without Mosquitto.

Run as its own process, ``python -m touchpoint.broker --port 1883``, so the demo starts, stops and
isolates it like every other component. amqtt speaks MQTT 3.1.1 only and has no shared
subscriptions, so whoever uses it sets ``[mqtt] protocol = "3.1.1"`` and ``[hq] share_group = ""``.
Retained messages live in memory: after a restart the edges re-send what HQ has not acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener, anonymous clients, no $SYS topics or packet logs."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve(host: str, port: int) -> None:
    """Listen until SIGTERM or SIGINT, then shut down (clients see a clean disconnect)."""
    from amqtt.broker import Broker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(broker_config(host, port), loop=loop)
    await broker.start()
    print(f"amqtt broker on mqtt://{host}:{port}", flush=True)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m touchpoint.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
