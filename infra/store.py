"""Artifact store: any S3-compatible endpoint, used only through the `minio` SDK.

Artifacts are addressed as `s3://bucket/key`; keys derive from job id + step so a retried step
overwrites its own object instead of creating a second one.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from infra.settings import Settings


def make_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key).

    Raises:
        ValueError: not an s3:// URI.
    """
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3:// artifact URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class ObjectStore:
    """Thin, synchronous wrapper over `minio.Minio` (call it from threads in async code)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        access_key, secret_key = settings.s3_keys
        self.client = Minio(
            settings.s3_target,
            access_key=access_key,
            secret_key=secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )

    def ensure_buckets(self) -> None:
        s = self.settings
        for bucket in (s.raw_bucket, s.published_bucket, s.inputs_bucket):
            if not self.client.bucket_exists(bucket):
                self.client.make_bucket(bucket)

    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> str:
        self.client.fput_object(bucket, key, str(path), content_type=content_type)
        return make_uri(bucket, key)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> str:
        self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        return make_uri(bucket, key)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        response = self.client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def download(self, uri: str, path: Path) -> Path:
        bucket, key = split_uri(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.fget_object(bucket, key, str(path))
        return path

    def copy(self, src_uri: str, bucket: str, key: str) -> str:
        """Server-side copy of `src_uri` to `bucket/key`."""
        src_bucket, src_key = split_uri(src_uri)
        self.client.copy_object(bucket, key, CopySource(src_bucket, src_key))
        return make_uri(bucket, key)

    def size(self, uri: str) -> int | None:
        """Size in bytes of the object at `uri`, or None when there is none."""
        bucket, key = split_uri(uri)
        try:
            return int(self.client.stat_object(bucket, key).size or 0)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "NoSuchBucket"):
                return None
            raise

    def exists(self, uri: str) -> bool:
        bucket, key = split_uri(uri)
        try:
            self.client.stat_object(bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [o.object_name for o in self.client.list_objects(bucket, prefix, recursive=True)]

    def presigned_get(self, uri: str, expires_s: int = 3600) -> str:
        bucket, key = split_uri(uri)
        return self.client.presigned_get_object(bucket, key, expires=timedelta(seconds=expires_s))
