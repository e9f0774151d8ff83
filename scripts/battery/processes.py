"""The processes under test: one `pixmill gateway` and two `pixmill worker`s, started from the
failpoints build with `PIXMILL_*` environment, killed, paused and stopped by their PIDs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from services import ServiceError, free_port, wait_until

#: How long a process may take to exit after SIGTERM: the engine's shutdown grace (10 s) plus
#: the HTTP server's, with room for a loaded machine.
STOP_DEADLINE = 25.0


@dataclass
class Exit:
    """How one SIGTERM ended."""

    name: str
    code: int | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.seconds <= STOP_DEADLINE


class Pixmill:
    """One pixmill process. Its output goes to a log file per start."""

    def __init__(self, binary: Path, role: str, name: str, env: dict[str, str], logs: Path):
        self.binary, self.role, self.name = binary, role, name
        self.env = dict(env)
        self.logs = logs
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0
        if role == "gateway":
            self.env["PIXMILL_SERVER__ADDR"] = f"127.0.0.1:{self.port}"
        else:
            self.env["PIXMILL_WORKER__ADMIN_ADDR"] = f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, start: int | None = None) -> Path:
        return self.logs / f"{self.name}.{self.starts if start is None else start}.log"

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        with open(self.log_path(), "ab") as log:
            self.process = subprocess.Popen([str(self.binary), self.role], env=self.env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.alive():
                raise ServiceError(f"{self.name} exited at start; see {self.log_path()}")
            try:
                return requests.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 90, self.name, interval=0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        """`kill -9`, then reap."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def terminate(self) -> Exit:
        """SIGTERM, then wait up to the deadline (and SIGKILL after it, reported as failed)."""
        if not self.alive():
            code = self.process.returncode if self.process else None
            return Exit(self.name, code, 0.0)
        self.signal(signal.SIGCONT)
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_DEADLINE + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        return Exit(self.name, code, time.monotonic() - started)

    def log_count(self, message: str) -> int:
        """Log lines, over every start, whose message is exactly `message`."""
        needle = f'"message":"{message}"'
        count = 0
        for start in range(1, self.starts + 1):
            path = self.log_path(start)
            if path.exists():
                count += path.read_text(errors="replace").count(needle)
        return count


@dataclass
class Fleet:
    """A gateway and its workers. With `restart_gateway`, a watcher starts the gateway
    again whenever it dies (a fail point aborted it) and counts the aborts."""

    gateway: Pixmill
    workers: list[Pixmill]
    restart_gateway: bool = False
    gateway_aborts: int = 0
    exits: list[Exit] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def start(self) -> None:
        for worker in self.workers:
            worker.start(wait=False)
        self.gateway.start(wait=False)
        for process in (*self.workers, self.gateway):
            process.wait_ready()
        if self.restart_gateway:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            if not self.gateway.alive():
                self.gateway_aborts += 1
                self.gateway.start(wait=False)

    def stop(self) -> list[Exit]:
        """SIGTERM to every process; returns how each exited."""
        self._stop.set()
        if self._watcher:
            self._watcher.join()
        exits = [self.gateway.terminate()] + [w.terminate() for w in self.workers]
        self.exits.extend(exits)
        return exits

    def kill_all(self) -> None:
        self._stop.set()
        for process in (self.gateway, *self.workers):
            process.signal(signal.SIGCONT)
            process.kill()
