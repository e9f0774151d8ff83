"""The scenarios: what load each one sends, which fault it injects when, and what proves that
the fault really happened (a scenario whose fault never fired passes nothing)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from processes import Exit, Fleet


@dataclass
class Context:
    """What a fault action may touch."""

    fleet: Fleet
    battery: object
    notes: dict[str, int | str] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    uploads: list = field(default_factory=list)


Action = Callable[[Context], None]


@dataclass
class Scenario:
    name: str
    uploads: int
    poison: int = 0
    env: dict[str, str] = field(default_factory=dict)
    restart_gateway: bool = False
    #: (fraction of uploads answered, action), in order.
    actions: list[tuple[float, Action]] = field(default_factory=list)
    #: Checks that the fault took place; returns counts for the report line and problems.
    evidence: Callable[[Context], tuple[dict, list[str]]] | None = None
    #: True for a run of a known-wrong variant (PIXMILL_FAULTY in `env`): the battery must
    #: catch it (lost > 0), and the scenario passes only then.
    expect_fail: bool = False
    #: How long after the last upload every accepted image has to reach its final status.
    patience: float = 120.0


def kill_worker(index: int) -> Action:
    def act(ctx: Context) -> None:
        worker = ctx.fleet.workers[index]
        worker.kill()
        time.sleep(1.0)
        worker.start()
        ctx.notes["worker_kills"] = int(ctx.notes.get("worker_kills", 0)) + 1

    return act


def restart_rabbitmq(ctx: Context) -> None:
    ctx.battery.rabbit.stop()
    ctx.battery.rabbit.start()
    ctx.notes["broker_restarts"] = 1


def restart_postgres(ctx: Context) -> None:
    ctx.battery.pg.stop()
    time.sleep(2.0)
    ctx.battery.pg.start()
    ctx.notes["database_restarts"] = 1


def cut_s3(seconds: float) -> Action:
    def act(ctx: Context) -> None:
        ctx.battery.proxy.cut()
        time.sleep(seconds)
        ctx.battery.proxy.restore()
        ctx.notes["s3_outage_s"] = int(seconds)

    return act


def stall_worker(seconds: float) -> Action:
    def act(ctx: Context) -> None:
        worker = ctx.fleet.workers[0]
        worker.signal(signal.SIGSTOP)
        time.sleep(seconds)
        worker.signal(signal.SIGCONT)

    return act


def sigterm(which: str) -> Action:
    def act(ctx: Context) -> None:
        process = ctx.fleet.gateway if which == "gateway" else ctx.fleet.workers[0]
        ctx.exits.append(process.terminate())
        process.start(wait=False)

    return act


def aborts_happened(ctx: Context) -> tuple[dict, list[str]]:
    aborts = ctx.fleet.gateway_aborts
    return {"gateway_aborts": aborts}, [] if aborts else ["no fail point fired: the scenario tested nothing"]


def duplicates_published(ctx: Context) -> tuple[dict, list[str]]:
    count = ctx.fleet.gateway.log_count("fail point published a duplicate")
    return {"duplicates_published": count}, [] if count else ["no duplicate was published"]


def stale_write_refused(ctx: Context) -> tuple[dict, list[str]]:
    refused = ctx.fleet.workers[0].log_count("stale attempt; result not recorded")
    problems = [] if refused else ["the paused worker never came back with a stale result"]
    return {"stale_writes_refused": refused}, problems


def sigterm_exits(ctx: Context) -> tuple[dict, list[str]]:
    bad = [e for e in ctx.exits if not e.ok]
    problems = [f"{e.name} exited {e.code} after {e.seconds:.1f} s on SIGTERM mid-run" for e in bad]
    slowest = max((e.seconds for e in ctx.exits), default=0.0)
    # The gateway keeps its listener open for its drain period after the signal, so uploads
    # in that window must hear 503 shutting_down (retried) rather than a refused connection.
    refused = sum(u.shutting_down_503 for u in ctx.uploads)
    if not refused:
        problems.append("no upload got 503 shutting_down while the gateway drained")
    counts = {"midrun_sigterms": len(ctx.exits), "slowest_exit_s": f"{slowest:.1f}", "shutting_down_503": refused}
    return counts, problems


def poison_ended_failed(ctx: Context) -> tuple[dict, list[str]]:
    """At least one poison file was accepted (202); the checker already requires each
    accepted one to end FAILED with exactly one dead letter."""
    poison = [u for u in ctx.uploads if u.poison]
    accepted = sum(1 for u in poison if u.id)
    problems = [] if accepted else ["no poison upload was accepted: the scenario tested nothing"]
    return {"poison_accepted": f"{accepted}/{len(poison)}"}, problems


def all_scenarios() -> list[Scenario]:
    return [
        Scenario("baseline", 300),
        Scenario("worker_kill9", 150, actions=[(0.2, kill_worker(0)), (0.45, kill_worker(1)),
                                               (0.7, kill_worker(0))]),
        Scenario("failpoint_after_commit", 150, env={"PIXMILL_FAILPOINT": "after_commit:0.04"},
                 restart_gateway=True, evidence=aborts_happened),
        Scenario("failpoint_after_object_write", 150, env={"PIXMILL_FAILPOINT": "after_object_write:0.04"},
                 restart_gateway=True, evidence=aborts_happened),
        Scenario("rabbitmq_restart", 150, actions=[(0.3, restart_rabbitmq)]),
        Scenario("postgres_restart", 150, actions=[(0.3, restart_postgres)]),
        Scenario("s3_outage", 150, actions=[(0.3, cut_s3(10.0))]),
        Scenario("poison", 170, poison=20, evidence=poison_ended_failed),
        Scenario("duplicate_delivery", 150, env={"PIXMILL_FAILPOINT": "publish_twice:1"},
                 evidence=duplicates_published),
        Scenario("stalled_worker", 150, env={"PIXMILL_ENGINE__LEASE": "3s"}, actions=[(0.3, stall_worker(8.0))],
                 evidence=stale_write_refused),
        Scenario("sigterm_midrun", 150, actions=[(0.3, sigterm("worker")), (0.6, sigterm("gateway"))],
                 evidence=sigterm_exits),
        # Known-wrong variants, last: each must make the battery report loss. Nothing
        # republishes a job these variants drop, so a short patience (well past the
        # relay's publish grace and the lease) decides.
        Scenario("faulty_publish_before_commit", 40, env={"PIXMILL_FAULTY": "publish_before_commit"},
                 expect_fail=True, patience=15.0),
    ]
