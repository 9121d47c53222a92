"""Fault injection for the delivery tests: real processes to SIGKILL, a TCP link to cut.

:class:`Service` runs one ``touchpoint`` subcommand as a child process that a test can kill
(SIGKILL, as a power cut), restart and stop (SIGTERM, as systemd does). :class:`TcpProxy` sits
on loopback between the edge and the broker; ``cut()`` closes every connection through it and
its listening socket, so clients see the broker's port refuse them until ``restore()``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from touchpoint.services import free_port

TOUCHPOINT = str(Path(sys.executable).parent / "touchpoint")
CHUNK = 64 * 1024


class Service:
    """``touchpoint ARGS...`` as a child process; its output goes to ``log_path`` (appended)."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = [TOUCHPOINT, *args]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0  # wall clock of the latest start, to tell its work from a predecessor's

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Service:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.args[1]} is already running (pid {self.process.pid})")
        self.started_at = time.time()
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL and reap: no handler runs, nothing is flushed, the will message fires."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        if self.process is not None:
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, and return the exit code; killed (and reported as such) if it hangs."""
        if self.process is None:
            raise RuntimeError(f"{self.args[1]} was never started")
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{' '.join(self.args[1:])} ignored SIGTERM for {timeout} s:\n{self.log_tail()}"
            ) from None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class _Link:
    """One client connection and its upstream twin, pumped by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self.shutdown()  # one side gone: the other must see it too, as with a real link

    def shutdown(self) -> None:
        """Wake both pumps (recv returns) without closing what the other thread may still use."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.shutdown()
        for thread in self.threads:
            thread.join(5)
        for sock in self.sockets:
            sock.close()


class TcpProxy:
    """A loopback TCP forwarder from ``port`` to ``target_port`` that can be cut and restored.

    ``accepted`` counts the connections it forwarded, so a test can tell that clients came back
    through it after ``restore()``.
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.accepted = 0
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._listening = threading.Event()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def restore(self) -> TcpProxy:
        """Listen on ``port``: the first start, and again after ``cut()``."""
        if self._listener is not None:
            return self
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)  # lets the acceptor notice cut() promptly
        self._listener = listener
        self._listening.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()
        return self

    def cut(self) -> None:
        """Close the listening socket and every forwarded connection: new clients are refused."""
        self._listening.clear()
        if self._acceptor is not None:
            self._acceptor.join(10)  # at most one accept timeout plus one upstream connect
        if self._listener is not None:
            self._listener.close()
        self._listener = self._acceptor = None
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listening.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the broker itself is down: the client sees the link drop
                continue
            upstream.settimeout(None)
            with self._lock:
                self._links.append(_Link(client, upstream))
                self.accepted += 1

    def __enter__(self) -> TcpProxy:
        return self.restore()

    def __exit__(self, *exc: object) -> None:
        self.cut()
