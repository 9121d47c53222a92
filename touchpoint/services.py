"""Real Mosquitto and PostgreSQL processes on free ports, for the demo, tests and benchmarks.

Each is started by the code that needs it and can be stopped, restarted and killed, so fault
tests exercise the real thing instead of a mock.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common.errors import TouchpointError


class ServiceError(TouchpointError, RuntimeError):
    """A helper service could not be started or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on ``port``; raises ServiceError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class Mosquitto:
    """A private Mosquitto broker: ``start()``, ``stop()``, ``kill()``, ``restart()``.

    ``extra_config`` lines are appended to the generated configuration (TLS, ACLs);
    ``persistence`` keeps retained messages and sessions across restarts, as production does.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        workdir: str | Path | None = None,
        extra_config: str = "",
        anonymous: bool = True,
        persistence: bool = True,
    ) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ServiceError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tp-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 100000",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.process and self.process.poll() is None:
            return self
        self.log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for its owner (the demo) must not reach it first
        )
        try:
            wait_for_port(self.port, timeout)
        except ServiceError:
            self.kill()
            raise ServiceError(
                f"mosquitto did not start: {(self.workdir / 'mosquitto.log').read_text()[-500:]}"
            ) from None
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): the broker saves its persistence file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a power cut would."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()
        self.process = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresCluster:
    """A throw-away PostgreSQL cluster in a temporary directory (initdb + pg_ctl).

    PostgreSQL refuses to run as root; when we are root the cluster runs as the ``postgres``
    user (created by Debian's package) and the directory is handed to that user.
    """

    def __init__(self, port: int | None = None, workdir: str | Path | None = None) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise ServiceError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin = Path(bins[-1])
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tp-postgres-"))
        self.datadir = self.workdir / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if result.returncode:
            raise ServiceError(f"{args[0]} failed: {result.stderr.strip()[-800:]}")

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, self.user)
        if not self.datadir.exists():
            self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", self.user, "--no-sync")
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.workdir / "postgres.log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(ServiceError):
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
