"""The fault battery's driver: `python scripts/battery --binary PATH [--only NAME...]`.
See scripts/fault-battery.sh, which builds the binary and calls this."""

from __future__ import annotations

import argparse
import atexit
import json
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
#: How long the orphan sweeper gets to remove originals left by aborted uploads: their age
#: (PIXMILL_ENGINE__ORPHAN_AGE) plus a few sweeps.
SWEEP_PATIENCE = 30.0
BUCKET_PREFIX = "battery-"
#: Small generated photos (noise over a gradient, each different) and one real JPEG, so the
#: PNG and the JPEG (shrink-on-load) paths both run and jobs stay quick.
GENERATED = 8
JPEG = "rocket.jpg"


def png_bytes(width: int, height: int, raw: bytes) -> bytes:
    """A truecolour PNG around `raw` (rows, each led by its filter byte)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def generated_png(k: int) -> bytes:
    """Source photo number `k`: 96-124 px wide, a gradient with noise of its own seed."""
    width, height = 96 + 4 * k, 72 + 3 * k
    rng = random.Random(k)
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw += bytes(((x * 255 // width + rng.randrange(48)) & 255,
                          (y * 255 // height + rng.randrange(48)) & 255,
                          (k * 29 + rng.randrange(96)) & 255))
    return png_bytes(width, height, bytes(raw))


def sources() -> dict[str, bytes]:
    out = {f"gen-{k}.png": generated_png(k) for k in range(GENERATED)}
    out[JPEG] = (CORPUS / JPEG).read_bytes()
    return out


def plan(index: int, names: list[str]) -> tuple[str, str]:
    """Upload `index`'s source and steps. Source, step kind and width all vary with the
    index, so within a scenario (under 1,728 uploads) every image has a result of its own,
    and two jobs that swapped results would show as corrupt."""
    name = names[index % len(names)]
    rest = index // len(names)
    width = 16 + (rest // 3) % 64
    kind = rest % 3
    if kind == 0:
        steps = f'[{{"op":"resize","width":{width}}}]'
    elif kind == 1:
        steps = f'[{{"op":"resize","width":{width},"height":{width},"fit":"cover"}}]'
    else:
        steps = f'[{{"op":"resize","width":{width}}},{{"op":"grayscale"}}]'
    return name, steps


def poison_png(seed: int, base: bytes) -> bytes:
    """`base` (a PNG) with its IDAT data replaced by noise (CRCs fixed): the header probe at
    upload passes, the decoder in the worker fails."""
    rng = random.Random(seed)
    out, i = bytearray(base[:8]), 8
    while i < len(base):
        (length,) = struct.unpack(">I", base[i:i + 4])
        kind, body = base[i + 4:i + 8], base[i + 8:i + 8 + length]
        if kind == b"IDAT":
            body = rng.randbytes(length)
        out += struct.pack(">I", length) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        i += 12 + length
    return bytes(out)


def poison_indices(uploads: int, poison: int) -> set[int]:
    """Exactly `poison` indices, spread evenly over the run."""
    return {(2 * k + 1) * uploads // (2 * poison) for k in range(poison)} if poison else set()


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
        self.sources = sources()
        self.names = sorted(self.sources)
        self.s3 = None
        self.fleet_running: Fleet | None = None

    def start(self, uploads: int) -> None:
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
        (data / "private-key.pem").chmod(0o600)  # pixmill refuses a key others may read
        self.render_expected(uploads)
        print(f"services up in {time.monotonic() - started:.1f} s (state in {self.root})", flush=True)

    def render_expected(self, uploads: int) -> None:
        """The reference result of every (source, steps) the run will send, rendered by the
        same code outside the processes under test, in one `debug render-batch` process."""
        folder = self.root / "sources"
        folder.mkdir()
        for name, body in self.sources.items():
            (folder / name).write_bytes(body)
        jobs = sorted({plan(i, self.names) for i in range(uploads)})
        lines = "".join(json.dumps({"file": str(folder / name), "steps": json.loads(steps)}) + "\n"
                        for name, steps in jobs)
        out = subprocess.run([str(self.binary), "debug", "render-batch"], input=lines, env=self.env(),
                             capture_output=True, text=True, check=True)
        sums = out.stdout.split()
        if len(sums) != len(jobs):
            raise RuntimeError(f"render-batch gave {len(sums)} results for {len(jobs)} jobs: {out.stderr}")
        self.expected = dict(zip(jobs, sums))

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
            # Every scenario ends with a SIGTERM; a short drain still shows its 503s.
            "PIXMILL_SERVER__SHUTDOWN_DRAIN": "1s",
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
    poisoned = poison_indices(scenario.uploads, scenario.poison)
    for i in range(scenario.uploads):
        name, steps = plan(i, battery.names)
        if i in poisoned:
            body = poison_png(i, battery.sources[battery.names[0]])
            uploads.append(Upload(i, f"poison-{i}.png", body, steps, poison=True))
        else:
            uploads.append(Upload(i, name, battery.sources[name], steps, poison=False))

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
    deadline = time.monotonic() + scenario.patience
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
    wanted = [battery.expected[(u.name, u.steps)] for u in uploads if u.id and not u.poison]
    report.counts["distinct_results"] = f"{len(set(wanted))}/{len(wanted)}"
    exits = fleet.stop()
    battery.fleet_running = None
    bad = [e for e in exits if not e.ok]
    report.problems.extend(f"{e.name} exited {e.code} after {e.seconds:.1f} s on SIGTERM" for e in bad)
    report.counts["bad_exits"] = len(bad)
    report.counts["seconds"] = f"{time.monotonic() - started:.0f}"
    if scenario.expect_fail:
        report = judged_faulty(report)
    print(f"  {scenario.name}: uploads took {uploaded - started:.1f} s, all final after "
          f"{settled - uploaded:.1f} s more", flush=True)
    return report


def judged_faulty(report: Report) -> Report:
    """A known-wrong variant's report: it passes when the battery caught the fault (an
    accepted image lost), and fails when every count came out clean."""
    lost = int(report.counts.get("lost", 0))
    got = "fail" if lost > 0 else "pass"
    judged = Report(report.name, {"expected": "fail", "got": got, **report.counts})
    if got == "pass":
        judged.problems = ["the known-wrong variant passed: the battery did not catch it",
                           *report.problems]
    else:
        print(f"  {report.name}: caught, as it must be ({len(report.problems)} problems, e.g. "
              f"{report.problems[0]})", flush=True)
    return judged


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
        battery.start(max(s.uploads for s in scenarios))
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
