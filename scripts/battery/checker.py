"""Counts, per scenario, what a user would call a failure: a 202 that never completed (lost),
more than one result or a status that went backwards (duplicated), a result that is not the
transform of its original (corrupt), plus the leftovers the guarantees rule out."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from client import Client, Observer, Upload

FINAL = {"COMPLETED", "FAILED"}
#: Images checked at once.
CHECKERS = 8


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    """What the battery reads behind pixmill's back: the rows and the buckets."""

    rows: dict[str, tuple[str, str]]  # id -> (owner, status)
    raw_keys: list[str]
    processed_keys: list[str]
    dead_letters: list[str]


@dataclass
class Report:
    name: str
    counts: dict[str, int | str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        fields = " ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"scenario={self.name} {fields}"

    @property
    def passed(self) -> bool:
        return not self.problems


def backwards(history: list) -> bool:
    """A final status that later changed, or an attempt count that went down."""
    final = None
    for before, after in zip(history, history[1:]):
        if after.attempts < before.attempts:
            return True
    for seen in history:
        if final is not None and seen.status != final:
            return True
        if seen.status in FINAL:
            final = seen.status
    return False


@dataclass
class Verdict:
    """What the checker found about one accepted image."""

    completed: bool = False
    duplicated: bool = False
    corrupt: bool = False
    problems: list[str] = field(default_factory=list)


def judge(upload: Upload, client: Client, observer: Observer, results: int,
          expected: dict[tuple[str, str], str]) -> Verdict:
    verdict = Verdict()
    document = client.document(upload.id)
    status = document["status"] if document else None
    wanted = "FAILED" if upload.poison else "COMPLETED"
    if status != wanted:
        verdict.problems.append(f"lost {upload.id} ({upload.name}): {status}, wanted {wanted}")
        return verdict
    verdict.completed = True

    history = observer.history.get(upload.id, [])
    # A job's error is the client's to read: the backends' own text (addresses, buckets,
    # keys) stays in the logs.
    leaked = [s.error for s in history if "127.0.0.1" in s.error or "://" in s.error]
    if leaked:
        verdict.problems.append(f"internal detail in {upload.id}'s error: {leaked[0]}")
    if results != (0 if upload.poison else 1) or backwards(history):
        verdict.duplicated = True
        seen = [(s.status, s.attempts) for s in history]
        verdict.problems.append(f"duplicated {upload.id}: {results} result objects, history {seen}")
    if document["original"]["sha256"] != sha256(upload.body):
        verdict.corrupt = True
        verdict.problems.append(f"corrupt original of {upload.id}")
    if upload.poison:
        return verdict
    body, answer = client.download(f"/v1/images/{upload.id}/processed")
    want = expected[(upload.name, upload.steps)]
    recorded = (document.get("processed") or {}).get("sha256")
    if body is None or sha256(body) != want or recorded != want:
        verdict.corrupt = True
        got = sha256(body) if body is not None else "no body"
        verdict.problems.append(f"corrupt result of {upload.id}: download ({answer}) {got}, "
                                f"recorded {recorded}, wanted {want}")
    elif upload.index % 10 == 0 and client.download(f"/v1/images/{upload.id}/original")[0] != upload.body:
        verdict.corrupt = True
        verdict.problems.append(f"corrupt original download of {upload.id}")
    return verdict


def check(name: str, owner: str, uploads: list[Upload], observer: Observer, client: Client,
          expected: dict[tuple[str, str], str], store: Store) -> Report:
    report = Report(name)
    accepted = [u for u in uploads if u.id]
    poison_ids = {u.id for u in accepted if u.poison}
    results_per_id: dict[str, int] = {}
    for key in store.processed_keys:
        image_id = key.split("/", 1)[0]
        results_per_id[image_id] = results_per_id.get(image_id, 0) + 1

    with ThreadPoolExecutor(CHECKERS) as pool:
        verdicts = list(pool.map(
            lambda u: judge(u, client, observer, results_per_id.get(u.id, 0), expected), accepted))
    completed = sum(v.completed for v in verdicts)
    lost = len(verdicts) - completed
    duplicated = sum(v.duplicated for v in verdicts)
    corrupt = sum(v.corrupt for v in verdicts)
    for verdict in verdicts:
        report.problems.extend(verdict.problems)

    refused = [u for u in uploads if not u.id and not u.poison]
    for upload in refused:
        report.problems.append(f"upload {upload.index} ({upload.name}) never accepted: {upload.refused}")
    known = {u.id for u in accepted}
    unknown = [i for i, (o, _) in store.rows.items() if o == owner and i not in known]
    for image_id in unknown:
        report.problems.append(f"row {image_id} ({store.rows[image_id][1]}) was never acknowledged to the client")
    orphans = [k for k in store.raw_keys if k.split(".", 1)[0] not in store.rows]
    for key in orphans:
        report.problems.append(f"orphan original {key}")

    letters: dict[str, int] = {}
    for image_id in store.dead_letters:
        letters[image_id] = letters.get(image_id, 0) + 1
    one_each = sum(1 for i in poison_ids if letters.get(i) == 1)
    stray = sum(n for i, n in letters.items() if i not in poison_ids) + sum(
        n - 1 for i, n in letters.items() if i in poison_ids and n > 1)
    if one_each != len(poison_ids) or stray:
        report.problems.append(f"dead letters: {one_each}/{len(poison_ids)} poison jobs have exactly one, "
                               f"{stray} stray")

    report.counts = {
        "completed": f"{completed}/{len(accepted)}",
        "lost": lost,
        "duplicated": duplicated,
        "corrupt": corrupt,
        "refused": len(refused),
        "orphans": len(orphans),
        "unacknowledged_rows": len(unknown),
        "dead_letters": f"{one_each}/{len(poison_ids)}",
        "stray_dead_letters": stray,
    }
    return report
