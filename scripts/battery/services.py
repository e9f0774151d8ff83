"""The battery's own servers: a PostgreSQL cluster, a RabbitMQ node and a moto S3 server
behind a TCP proxy that can be cut. Each lives in the run's temporary folder, listens on
loopback only and is stopped by the PID it was started with. The machine's shared
PostgreSQL (5432) and RabbitMQ (5672) are never touched; Redis (6379) is shared and used
under a key prefix of the run's own.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, seconds: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ServiceError(f"{what} not ready within {seconds:.0f} s")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


class Postgres:
    """A throwaway cluster, owned by the `postgres` user (initdb refuses root)."""

    def __init__(self, root: Path):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise ServiceError("no /usr/lib/postgresql/*/bin/initdb: install PostgreSQL's server package")
        self.bin = Path(bins[-1]).parent
        self.data = root / "pg"
        self.socket_dir = root / "pg-socket"
        self.log = root / "logs" / "postgres.log"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> None:
        if not self.data.exists():
            for path in (self.data, self.socket_dir):
                path.mkdir(parents=True)
                if os.geteuid() == 0:
                    shutil.chown(path, "postgres", "postgres")
            run(self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                               "--no-sync", "-E", "UTF8"))
            if os.geteuid() == 0:
                self.log.touch()
                shutil.chown(self.log, "postgres", "postgres")
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        run(self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                           "-w", "-t", "60", "start"))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            run(self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                               "stop"))

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of `sql`, each a list of text fields."""
        out = run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                   "postgres", "-At", "-F", "\t", "-c", sql]).stdout
        return [line.split("\t") for line in out.splitlines() if line]


class RabbitMQ:
    """A node of its own (name, ports, data, cookie), so the machine's broker is untouched."""

    NODE = "pixmill-battery@localhost"

    def __init__(self, root: Path):
        self.dir = root / "rabbitmq"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        self.pid_file = self.dir / "node.pid"
        self.env = {
            **os.environ,
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.NODE,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "logs" / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        # The Debian wrappers in /usr/sbin switch to the rabbitmq user (and its cookie); the
        # scripts behind them run the node as the caller, with this node's own HOME.
        self.bin = Path("/usr/lib/rabbitmq/bin")
        if not (self.bin / "rabbitmq-server").exists():
            self.bin = Path(shutil.which("rabbitmq-server") or "rabbitmq-server").parent

    def start(self) -> None:
        if not self.dir.exists():
            (self.dir / "mnesia").mkdir(parents=True)
            (self.dir / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
                "disk_free_limit.absolute = 50MB\n"
                "log.console = false\n")
            (self.dir / "rabbitmq-env.conf").write_text("")
            (self.dir / "enabled_plugins").write_text("[].\n")
        run([str(self.bin / "rabbitmq-server"), "-detached"], env=self.env)
        wait_until(lambda: port_open(self.port), 90, f"RabbitMQ on {self.port}", interval=0.2)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        result = subprocess.run([str(self.bin / "rabbitmqctl"), "-n", self.NODE, "stop", str(self.pid_file)],
                                env=self.env, capture_output=True, text=True, timeout=90)
        if result.returncode != 0 and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not port_open(self.port), 30, "RabbitMQ to stop")
        self.pid_file.unlink(missing_ok=True)


class Moto:
    """moto's S3 server (in memory), from the venv scripts/test-services.sh installs."""

    def __init__(self, root: Path, venv: Path):
        self.exe = venv / "bin" / "moto_server"
        if not self.exe.exists():
            raise ServiceError(f"{self.exe} missing: run scripts/test-services.sh once to install moto")
        self.port = free_port()
        self.log = root / "logs" / "moto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(self.exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                            stdout=log, stderr=log)
        wait_until(lambda: port_open(self.port), 60, f"moto on {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


class CuttableProxy:
    """A TCP proxy on loopback. `cut()` closes the listener and every live connection, so
    clients get resets and then refusals, as from a server that went away; `restore()` listens
    on the same port again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener:
            _close(listener)
        for conn in conns:
            _close(conn)

    def restore(self) -> None:
        self.start()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
