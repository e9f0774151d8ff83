"""The client side: uploads the way a careful client does (an Idempotency-Key per image,
retried on connection errors, 408, 429 and 5xx), records every action, and watches every status
the owner's listing shows."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

#: How long one image's upload is retried before the client gives up on it.
UPLOAD_PATIENCE = 120.0
#: 408: the gateway's request timeout cut a slow upload short (a busy machine); nothing
#: was stored under the Idempotency-Key, or the retry finds what was.
RETRYABLE = {408, 429, 500, 502, 503, 504}


@dataclass
class Upload:
    """One image the client sends, and what became of it."""

    index: int
    name: str
    body: bytes
    steps: str
    poison: bool
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    tries: int = 0
    id: str | None = None
    refused: str | None = None
    shutting_down_503: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Seen:
    """One observation of an image's status document."""

    at: float
    status: str
    attempts: int
    updated_at: str
    #: The document's `error.message`, "" without one.
    error: str = ""


class Client:
    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.token}"
        return self.local.session

    def upload(self, upload: Upload) -> None:
        """Sends until a 202, a final refusal, or the patience runs out."""
        deadline = time.monotonic() + UPLOAD_PATIENCE
        pause = 0.1
        while time.monotonic() < deadline:
            upload.tries += 1
            try:
                response = self.session().post(
                    f"{self.base}/v1/images",
                    headers={"Idempotency-Key": upload.key},
                    files={"file": (upload.name, upload.body)},
                    data={"steps": upload.steps},
                    timeout=30,
                )
            except requests.RequestException as error:
                upload.errors.append(type(error).__name__)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if response.status_code == 202:
                upload.id = response.json()["id"]
                return
            code = _code(response)
            if response.status_code in RETRYABLE:
                upload.errors.append(f"{response.status_code} {code}")
                if code == "shutting_down":
                    upload.shutting_down_503 += 1
                time.sleep(min(float(response.headers.get("Retry-After", pause)), 2.0))
                pause = min(pause * 2, 2.0)
                continue
            upload.refused = f"{response.status_code} {code}"
            return
        upload.refused = f"gave up after {upload.tries} tries: {upload.errors[-3:]}"

    def document(self, image_id: str) -> dict | None:
        response = self.session().get(f"{self.base}/v1/images/{image_id}", timeout=30)
        return response.json() if response.status_code == 200 else None

    def download(self, path: str) -> tuple[bytes | None, str]:
        """The body of a 200, else None; and how the answer went, for a problem report. Not
        retried: downloads are checked after the fault has passed, when a healthy system
        answers the first time."""
        response = self.session().get(f"{self.base}{path}", timeout=60)
        if response.status_code == 200:
            return response.content, f"200, {len(response.content)} bytes"
        return None, f"{response.status_code} {_code(response)}: {response.text[:200]}"

    def listing(self) -> list[dict]:
        """Every image of the owner, through the paged listing."""
        items, cursor = [], None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = self.session().get(f"{self.base}/v1/images", params=params, timeout=30)
            response.raise_for_status()
            page = response.json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _code(response: requests.Response) -> str:
    try:
        return response.json().get("code", "")
    except ValueError:
        return ""


class Observer:
    """Polls the owner's listing and keeps, per image, every change of status it saw."""

    def __init__(self, client: Client, interval: float = 0.3):
        self.client = client
        self.interval = interval
        self.history: dict[str, list[Seen]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def poll_once(self) -> bool:
        try:
            items = self.client.listing()
        except (requests.RequestException, ValueError):
            return False
        now = time.monotonic()
        with self.lock:
            for item in items:
                error = (item.get("error") or {}).get("message", "")
                seen = Seen(now, item["status"], item["attempts"], item["updated_at"], error)
                history = self.history.setdefault(item["id"], [])
                if not history or (history[-1].status, history[-1].attempts, history[-1].updated_at) != (
                        seen.status, seen.attempts, seen.updated_at):
                    history.append(seen)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def last_status(self, image_id: str) -> str | None:
        with self.lock:
            history = self.history.get(image_id)
            return history[-1].status if history else None


def upload_all(client: Client, uploads: list[Upload], concurrency: int) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client.upload, uploads))
