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
