"""Upload, poll and download through the Python client generated from openapi/openapi.json.

Run by scripts/client-test.sh against a fresh `pixmill standalone`; exits non-zero with a
message on the first thing that is not as the spec promises.
"""

import argparse
import hashlib
import sys
import time
import uuid
from pathlib import Path

from pixmill_client import AuthenticatedClient
from pixmill_client.api.images import download_original, download_processed, get_image, upload_image
from pixmill_client.models import (
    ErrorBody,
    ImageDocument,
    ImageStatusCode,
    StepRequestFlopStep,
    StepRequestFlopStepOp,
    StepRequestGrayscaleStep,
    StepRequestGrayscaleStepOp,
    StepRequestResizeStep,
    StepRequestResizeStepOp,
    UploadImageBody,
)
from pixmill_client.types import File

FINAL = {ImageStatusCode.COMPLETED, ImageStatusCode.FAILED}


def fail(message: str) -> None:
    print(f"client-test: {message}", file=sys.stderr)
    sys.exit(1)


def upload(client: AuthenticatedClient, image: Path, request_id: str) -> ImageDocument:
    body = UploadImageBody(
        file=File(payload=image.open("rb"), file_name=image.name, mime_type="application/octet-stream"),
        steps=[
            StepRequestResizeStep(op=StepRequestResizeStepOp.RESIZE, width=120),
            StepRequestFlopStep(op=StepRequestFlopStepOp.FLOP),
            StepRequestGrayscaleStep(op=StepRequestGrayscaleStepOp.GRAYSCALE),
        ],
    )
    response = upload_image.sync_detailed(client=client, body=body, x_request_id=request_id)
    if response.status_code != 202 or not isinstance(response.parsed, ImageDocument):
        fail(f"upload answered {response.status_code}: {response.content!r}")
    if response.headers.get("x-request-id") != request_id:
        fail(f"upload did not return our request id: {response.headers.get('x-request-id')!r}")
    return response.parsed


def wait_until_final(client: AuthenticatedClient, image_id: str, patience: float) -> ImageDocument:
    """Long polls until the image is final, for at most `patience` seconds."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        doc = get_image.sync(image_id, client=client, wait="30s")
        if isinstance(doc, ErrorBody) or doc is None:
            fail(f"status of {image_id}: {doc}")
        if doc.status in FINAL:
            return doc
    fail(f"{image_id} not final after {patience} s")


def download(call, client: AuthenticatedClient, image_id: str) -> bytes:
    response = call.sync_detailed(image_id, client=client)
    if response.status_code != 200:
        fail(f"{call.__name__} answered {response.status_code}: {response.content[:200]!r}")
    if response.headers.get("x-content-type-options") != "nosniff":
        fail(f"{call.__name__} lacks X-Content-Type-Options: nosniff")
    return response.content


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--image", type=Path, required=True)
    args = parser.parse_args()

    client = AuthenticatedClient(base_url=args.base_url, token=args.token, timeout=60.0)
    with client:
        accepted = upload(client, args.image, f"client-test-{uuid.uuid4().hex[:12]}")
        if accepted.status != ImageStatusCode.PENDING:
            fail(f"a new upload is {accepted.status}, not PENDING")
        done = wait_until_final(client, accepted.id, patience=120)
        if done.status != ImageStatusCode.COMPLETED:
            fail(f"the job ended {done.status}: {done.error}")
        if done.processed.width != 120:
            fail(f"processed width is {done.processed.width}, asked for 120")

        processed = download(download_processed, client, done.id)
        if hashlib.sha256(processed).hexdigest() != done.processed.sha256:
            fail("the processed download does not match the sha256 of the status document")
        original = download(download_original, client, done.id)
        if original != args.image.read_bytes():
            fail("the original download differs from the uploaded file")
    print(f"client-test: {accepted.id} uploaded, COMPLETED at {done.processed.width}x{done.processed.height}, both files downloaded")


if __name__ == "__main__":
    main()
