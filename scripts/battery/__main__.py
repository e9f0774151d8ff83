"""The fault battery's driver: `python scripts/battery --binary PATH [--only NAME...]`.
See scripts/fault-battery.sh, which builds the binary and calls this."""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).parent))

from checker import FINAL, Report, Store, check  # noqa: E402
from client import Client, Observer, Upload, upload_all  # noqa: E402
from processes import Fleet, Pixmill  # noqa: E402
from scenarios import Context, Scenario, all_scenarios  # noqa: E402
from services import CuttableProxy, Moto, Postgres, RabbitMQ  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "corpus"
CONCURRENCY = 16
#: How long after the last upload every accepted image has to reach its final status.
FINAL_PATIENCE = 120.0
#: How long the orphan sweeper gets to remove originals left by aborted uploads: their age
#: (PIXMILL_ENGINE__ORPHAN_AGE) plus a few sweeps.
SWEEP_PATIENCE = 30.0
BUCKET_PREFIX = "battery-"
STEPS = [
    ("rocket.jpg", '[{"op":"resize","width":96}]'),
    ("astronaut.png", '[{"op":"resize","width":64,"height":64,"fit":"cover"}]'),
    ("rocket.jpg", '[{"op":"resize","width":80},{"op":"grayscale"}]'),
]


def poison_png(seed: int) -> bytes:
    """astronaut.png with its IDAT data replaced by noise (CRCs fixed): the header probe at
    upload passes, the decoder in the worker fails."""
    data = (CORPUS / "astronaut.png").read_bytes()
    rng = random.Random(seed)
    out, i = bytearray(data[:8]), 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        if kind == b"IDAT":
            body = rng.randbytes(length)
        out += struct.pack(">I", length) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        i += 12 + length
    return bytes(out)


class Battery:
    def __init__(self, binary: Path, venv: Path, faulty: str | None):
        self.binary = binary
        self.faulty = faulty
        self.root = Path(tempfile.mkdtemp(prefix="pixmill-battery-"))
        os.chmod(self.root, 0o755)
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.pg = Postgres(self.root)
        self.rabbit = RabbitMQ(self.root)
        self.moto = Moto(self.root, venv)
        self.proxy: CuttableProxy | None = None
        self.run_id = uuid.uuid4().hex[:8]
        self.expected: dict[tuple[str, str], str] = {}
        self.fixtures = {name: (CORPUS / name).read_bytes() for name, _ in STEPS}
        self.s3 = None
        self.fleet_running: Fleet | None = None

    def start(self) -> None:
        started = time.monotonic()
        threads = [threading.Thread(target=s.start) for s in (self.pg, self.rabbit, self.moto)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not (self.pg.data / "postmaster.pid").exists() or self.rabbit.pid() is None or not self.moto.process:
            raise RuntimeError(f"a service did not start; see the logs in {self.logs}")
        self.proxy = CuttableProxy(self.moto.port)
        self.proxy.start()
        self.s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.moto.port}", aws_access_key_id="testing",
                               aws_secret_access_key="testing", region_name="us-east-1")
        data = self.root / "data" / "issuer"
        data.mkdir(parents=True)
        shutil.copy(REPO / "tests" / "fixtures" / "issuer" / "private-key.pem", data / "private-key.pem")
        for name, steps in STEPS:
            out = subprocess.run([str(self.binary), "debug", "render", "--file", str(CORPUS / name), "--steps", steps],
                                 env=self.env(), capture_output=True, text=True, check=True)
            self.expected[(name, steps)] = out.stdout.split()[0]
        print(f"services up in {time.monotonic() - started:.1f} s (state in {self.root})", flush=True)

    def stop(self) -> None:
        if self.fleet_running:
            self.fleet_running.kill_all()
        for service in (self.proxy, self.moto, self.rabbit, self.pg):
            try:
                if service:
                    service.stop()
            except Exception as error:  # noqa: BLE001 - teardown goes on
                print(f"teardown: {error}", file=sys.stderr)
        self.forget_redis_keys()

    def forget_redis_keys(self) -> None:
        """Removes this run's keys from the shared Redis (they expire anyway, within minutes)."""
        if not shutil.which("redis-cli"):
            return
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", "6379"]
        keys = subprocess.run([*cli, "--scan", "--pattern", f"pixmill-battery-{self.run_id}:*"],
                              capture_output=True, text=True).stdout.split()
        for start in range(0, len(keys), 500):
            subprocess.run([*cli, "del", *keys[start:start + 500]], capture_output=True)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXMILL_")}
        env.update({
            "PIXMILL_DATA_DIR": str(self.root / "data"),
            "PIXMILL_METADATA__URL": self.pg.url,
            "PIXMILL_OBJECTS__URL": f"http://127.0.0.1:{self.proxy.port if self.proxy else self.moto.port}",
            "PIXMILL_OBJECTS__ACCESS_KEY": "testing",
            "PIXMILL_OBJECTS__SECRET_KEY": "testing",
            "PIXMILL_OBJECTS__BUCKET_PREFIX": BUCKET_PREFIX,
            "PIXMILL_QUEUE__URL": self.rabbit.url,
            "PIXMILL_CACHE__URL": "redis://127.0.0.1:6379",
            "PIXMILL_CACHE__KEY_PREFIX": f"pixmill-battery-{self.run_id}:",
            "PIXMILL_CACHE__UPLOADS_PER_WINDOW": "1000000",
            "PIXMILL_AUTH__TRUST_LOCAL_ISSUER_UNSAFE": "true",
            "PIXMILL_SERVER__PUBLISH_GRACE": "2s",
            "PIXMILL_ENGINE__LEASE": "10s",
            "PIXMILL_ENGINE__RELAY_INTERVAL": "500ms",
            "PIXMILL_ENGINE__SHUTDOWN_GRACE": "10s",
            # The sweeper's age must exceed the longest upload, which the request timeout
            # bounds: an upload between its two writes is never swept.
            "PIXMILL_SERVER__REQUEST_TIMEOUT": "10s",
            "PIXMILL_ENGINE__ORPHAN_AGE": "12s",
            "PIXMILL_ENGINE__SWEEP_INTERVAL": "1s",
            "PIXMILL_LOG__FORMAT": "json",
            "RUST_LOG": "info,poem=warn",
        })
        if self.faulty:
            env["PIXMILL_FAULTY"] = self.faulty
        env.update(extra or {})
        return env

    def token(self, owner: str) -> str:
        out = subprocess.run([str(self.binary), "token", "--sub", owner, "--ttl", "2h"], env=self.env(),
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def fleet(self, scenario: Scenario) -> Fleet:
        env = self.env(scenario.env)
        logs = self.logs / scenario.name
        logs.mkdir()
        gateway = Pixmill(self.binary, "gateway", "gateway", env, logs)
        workers = [Pixmill(self.binary, "worker", f"worker-{i}", env, logs) for i in range(2)]
        self.fleet_running = Fleet(gateway, workers, restart_gateway=scenario.restart_gateway)
        return self.fleet_running

    def keys(self, bucket: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET_PREFIX + bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def dead_letters(self) -> list[str]:
        out = subprocess.run([str(self.binary), "debug", "dead-letters"], env=self.env(), capture_output=True,
                             text=True, check=True)
        return out.stdout.split()

    def rows(self) -> dict[str, tuple[str, str]]:
        return {row[0]: (row[1], row[2]) for row in self.pg.psql("SELECT id, owner, status FROM images")}

    def orphans(self) -> list[str]:
        rows = self.rows()
        return [k for k in self.keys("raw-images") if k.split(".", 1)[0] not in rows]


def run_scenario(battery: Battery, scenario: Scenario) -> Report:
    started = time.monotonic()
    owner = f"battery-{battery.run_id}-{scenario.name}"
    battery.dead_letters()
    fleet = battery.fleet(scenario)
    fleet.start()
    client = Client(fleet.gateway.base, battery.token(owner))
    observer = Observer(client)
    observer.start()
    ctx = Context(fleet, battery)

    uploads = []
    poison_every = scenario.uploads // scenario.poison if scenario.poison else 0
    for i in range(scenario.uploads):
        if poison_every and i % poison_every == poison_every // 2:
            uploads.append(Upload(i, f"poison-{i}.png", poison_png(i), STEPS[0][1], poison=True))
        else:
            name, steps = STEPS[i % len(STEPS)]
            uploads.append(Upload(i, name, battery.fixtures[name], steps, poison=False))

    def answered() -> float:
        return sum(1 for u in uploads if u.id or u.refused) / len(uploads)

    def faults() -> None:
        for fraction, action in scenario.actions:
            while answered() < fraction:
                time.sleep(0.05)
            action(ctx)

    injector = threading.Thread(target=faults)
    injector.start()
    upload_all(client, uploads, CONCURRENCY)
    injector.join()
    uploaded = time.monotonic()

    accepted = [u for u in uploads if u.id]
    deadline = time.monotonic() + FINAL_PATIENCE
    while time.monotonic() < deadline and any(observer.last_status(u.id) not in FINAL for u in accepted):
        time.sleep(0.2)
    settled = time.monotonic()
    deadline = time.monotonic() + SWEEP_PATIENCE
    while time.monotonic() < deadline and battery.orphans():
        time.sleep(1.0)

    observer.poll_once()
    observer.stop()
    store = Store(battery.rows(), battery.keys("raw-images"),
                  battery.keys("processed-images"), battery.dead_letters())
    report = check(scenario.name, owner, uploads, observer, client, battery.expected, store)

    ctx.uploads = uploads
    if scenario.evidence:
        counts, problems = scenario.evidence(ctx)
        report.counts.update(counts)
        report.problems.extend(problems)
    report.counts.update(ctx.notes)
    exits = fleet.stop()
    battery.fleet_running = None
    bad = [e for e in exits if not e.ok]
    report.problems.extend(f"{e.name} exited {e.code} after {e.seconds:.1f} s on SIGTERM" for e in bad)
    report.counts["bad_exits"] = len(bad)
    report.counts["seconds"] = f"{time.monotonic() - started:.0f}"
    print(f"  {scenario.name}: uploads took {uploaded - started:.1f} s, all final after "
          f"{settled - uploaded:.1f} s more", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "pixmill" / "venv")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--faulty", help="a PIXMILL_FAULTY variant to run every scenario with")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs) after a pass")
    args = parser.parse_args()

    scenarios = [s for s in all_scenarios() if not args.only or s.name in args.only]
    if args.only and len(scenarios) != len(args.only):
        known = ", ".join(s.name for s in all_scenarios())
        parser.error(f"unknown scenario in {args.only}; known: {known}")

    battery = Battery(args.binary, args.venv, args.faulty)
    atexit.register(battery.stop)
    reports: list[Report] = []
    try:
        battery.start()
        for scenario in scenarios:
            report = run_scenario(battery, scenario)
            for problem in report.problems[:20]:
                print(f"  problem: {problem}", flush=True)
            if len(report.problems) > 20:
                print(f"  ... and {len(report.problems) - 20} more", flush=True)
            print(report.line(), flush=True)
            reports.append(report)
    finally:
        battery.stop()
        atexit.unregister(battery.stop)
    failed = len(reports) < len(scenarios) or not all(r.passed for r in reports)
    print("== summary" + (": FAILED" if failed else ": passed"))
    for report in reports:
        print(report.line() + ("" if report.passed else f"  <- {len(report.problems)} problems"))
    if failed or args.keep:
        print(f"logs kept in {battery.logs}", flush=True)
    else:
        shutil.rmtree(battery.root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
