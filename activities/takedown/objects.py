"""Moving a job's published objects between the published and the quarantine bucket.

Blocking minio calls (run them in a thread). Every function is idempotent: a retry after a
partial move picks up where the first attempt stopped, because keys are the same in both
buckets and a key is only deleted from its source after it was copied.
"""

from __future__ import annotations

from minio.commonconfig import CopySource
from minio.error import S3Error

from infra.store import ObjectStore

# The main audio a removal adds to the catalog, in order of preference (lossless first).
_MAIN_AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".opus")
# Delivery formats (artifact kind suffixes) in the same order; "wav"/"mp3": older jobs.
_FORMAT_PREFERENCE = ("wav24", "wav", "wav16", "flac", "mp3", "opus")


def ensure_bucket(store: ObjectStore, bucket: str) -> None:
    """Create `bucket` if missing (store.ensure_buckets does not know about it)."""
    if store.client.bucket_exists(bucket):
        return
    try:
        store.client.make_bucket(bucket)
    except S3Error as exc:  # a concurrent creator won the race
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def job_prefix(job_id: str) -> str:
    return f"{job_id}/"


def delete(store: ObjectStore, bucket: str, key: str) -> None:
    """Delete one object; a missing one is fine (S3 deletes are idempotent)."""
    store.client.remove_object(bucket, key)


def move(store: ObjectStore, src_bucket: str, dst_bucket: str, prefix: str) -> list[str]:
    """Copy every object under `prefix` from `src_bucket` to `dst_bucket` (same key), then delete
    it from the source. Returns the keys now in `dst_bucket` under `prefix`, sorted."""
    for key in store.list_keys(src_bucket, prefix):
        store.client.copy_object(dst_bucket, key, CopySource(src_bucket, key))
        delete(store, src_bucket, key)
    return sorted(store.list_keys(dst_bucket, prefix))


def purge(store: ObjectStore, buckets: list[str], prefix: str) -> list[str]:
    """Delete every object under `prefix` in each bucket; returns the deleted keys."""
    deleted: list[str] = []
    for bucket in buckets:
        for key in store.list_keys(bucket, prefix):
            delete(store, bucket, key)
            deleted.append(f"{bucket}/{key}")
    return sorted(deleted)


def main_audio_key(keys: list[str], job_id: str) -> str | None:
    """The job's main deliverable among `keys` (`<job>/<job>.wav` first), else None."""
    for suffix in _MAIN_AUDIO_SUFFIXES:
        key = f"{job_id}/{job_id}{suffix}"
        if key in keys:
            return key
    for suffix in _MAIN_AUDIO_SUFFIXES:  # products whose main file has another name
        for key in keys:
            if key.endswith(suffix) and not key.endswith("preview.mp3"):
                return key
    return None


def audio_parts(artifacts: list[dict[str, object]]) -> list[tuple[str | None, str]]:
    """(part name, key of its preferred file) of every published audio part of a job: the
    main audio first (part None), then each stem or layer by name; lossless files preferred.

    `artifacts` are the job's artifacts rows: `published_<format>` is the main audio,
    `published_part_<name>_<format>` a stem or layer. The preview (an excerpt of the main
    audio) and unknown formats are left out. Keys are relative to the bucket.
    """
    candidates: dict[str | None, list[tuple[int, str]]] = {}
    for row in artifacts:
        kind, uri = str(row["kind"]), str(row.get("uri") or "")
        if not kind.startswith("published_") or not uri.startswith("s3://"):
            continue
        rest = kind.removeprefix("published_")
        part: str | None = None
        if rest.startswith("part_"):
            part, _, fmt = rest.removeprefix("part_").rpartition("_")
            if not part:
                continue
        else:
            fmt = rest
        if fmt not in _FORMAT_PREFERENCE:
            continue
        key = uri.removeprefix("s3://").partition("/")[2]
        candidates.setdefault(part, []).append((_FORMAT_PREFERENCE.index(fmt), key))
    order = sorted(candidates, key=lambda p: (p is not None, p or ""))
    return [(part, min(candidates[part])[1]) for part in order]
