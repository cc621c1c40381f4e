"""Settings from `TUNESMITH_*` environment variables (pydantic-settings).

Defaults point at the embedded local stack under the state dir; production sets addresses,
credentials and TLS instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.credentials import read_local_secret
from schemas.errors import MissingSecretError


class Settings(BaseSettings):
    """All runtime settings. Every field can be set as `TUNESMITH_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TUNESMITH_", extra="ignore")

    home: Path = Field(default=Path(".tunesmith"), description="state dir of the local stack")

    # Temporal
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: str | None = None
    temporal_ui_url: str | None = None
    # Encrypt every Temporal payload (infra/codec.py): `id:base64key[,id:base64key...]`, the
    # first encrypts, all decrypt. Set the same value for workers, SDK, CLI and codec server.
    payload_keys: str | None = None
    # `tunesmith codec serve`: the token callers must present; and the codec endpoint the local
    # dev server's Web UI is started with (so it shows decrypted payloads).
    codec_server_token: str | None = None
    ui_codec_endpoint: str | None = None

    # PostgreSQL
    database_url: str | None = None
    # The embedded server's password; None: the state dir's secrets file (created by `up`).
    pg_password: str | None = None
    pg_port: int = 15432
    # shared_buffers of the embedded PostgreSQL; None: an eighth of the machine's memory, at
    # least 128MB and at most 4GB (infra.stack.default_shared_buffers). Catalog lookups stay
    # flat as the catalog grows only while its indexes fit here (docs/similarity.md).
    pg_shared_buffers: str | None = Field(default=None, pattern=r"^[1-9][0-9]*(kB|MB|GB)$")

    # S3-compatible artifact store
    s3_endpoint: str | None = None
    s3_port: int = 19000
    # None: the embedded store's keys from the state dir's secrets file (created by `up`).
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    raw_bucket: str = "tunesmith-raw"
    published_bucket: str = "tunesmith-published"
    inputs_bucket: str = "tunesmith-inputs"  # uploaded MIDI melodies and reference audio

    # Pipeline behaviour
    review_timeout_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    # Directory of `review-policy@N.toml` files (the highest N is used); None: the shipped ones.
    review_policy_dir: Path | None = None
    # How long the local dev server keeps finished histories (and so idempotency keys).
    local_retention_days: int = Field(default=3650, gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0)
    # How long a render may wait for a GPU worker serving its model before the job fails with
    # ModelNotServed (a queue of paid work should page someone, not sit forever).
    gpu_queue_timeout_s: float = Field(default=600.0, gt=0)
    # Renders one GPU worker runs at once (all its models together).
    gpu_max_concurrent: int = Field(default=1, ge=1, le=64)
    # Disclosure: every master carries an inaudible watermark (payload: hash of the job id)
    # and every WAV/FLAC/MP3 deliverable a signed C2PA manifest stating AI generation.
    watermark_enabled: bool = True
    watermark_key: str | None = None  # None: the state dir's secrets file (created by `up`)
    c2pa_enabled: bool = True
    c2pa_cert_chain: Path | None = None  # PEM, leaf first; None: a local identity in <home>/c2pa
    c2pa_private_key: Path | None = None
    c2pa_tsa_url: str | None = None  # a timestamp authority, so signatures outlive the cert
    soundfont_path: Path | None = None
    # A local CLAP checkpoint (transformers ClapModel + feature extractor) for the features'
    # embedding; None: the weight-free dsp-v1 embedding. Set but unloadable: the worker fails.
    clap_model_dir: Path | None = None
    draft_price_cents_per_minute: int = 10
    # The reviewer's own token (`tunesmith reviewers add` prints it): the SDK, the CLI and the
    # review page sign that reviewer's decisions with it. Never sent anywhere itself.
    reviewer_token: str | None = None
    # Signs webhook bodies (X-Tunesmith-Signature: sha256=HMAC(secret, body)) when set.
    webhook_secret: str | None = None
    webhook_timeout_s: float = Field(default=10.0, gt=0)

    # Workers
    worker_max_concurrent_activities: int = 4
    # /healthz and /readyz of a worker process (workers/health.py); None: not served, 0: any
    # free port (the local stack's choice: `tunesmith status` reads it from the run dir).
    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for the orchestrator's probes
    # On SIGTERM: stop polling, give running steps this long to finish (else they are
    # cancelled and retried elsewhere), then exit 0. Keep the orchestrator's grace period above.
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    # Worker Versioning: the CPU (workflow) workers join the Temporal Worker Deployment
    # `deployment_name` as version `build_id` (None: derived from the workflow code, see
    # workers/versioning.py). rollout "auto": a starting worker makes its version current
    # (local stack, single host); "manual": operators ramp and promote with `tunesmith rollout`.
    worker_versioning: bool = True
    deployment_name: str = Field(default="tunesmith", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    build_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]{1,100}$")
    rollout: Literal["auto", "manual"] = "auto"

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def dsn(self) -> str:
        """The metadata DB's connection URL, password included (never print it: `db_target`)."""
        if self.database_url:
            return self.database_url
        password = self.pg_password or read_local_secret(
            self.resolved_home, "pg_password", setting="TUNESMITH_PG_PASSWORD"
        )
        return f"postgresql://postgres:{password}@127.0.0.1:{self.pg_port}/tunesmith"

    @property
    def db_target(self) -> str:
        """Where the metadata DB is, for people: the URL without its password."""
        if not self.database_url:
            return f"postgresql://postgres@127.0.0.1:{self.pg_port}/tunesmith"
        parts = urlsplit(self.database_url)
        return parts._replace(netloc=_without_password(parts.netloc)).geturl()

    @property
    def s3_keys(self) -> tuple[str, str]:
        """(access key, secret key) of the artifact store."""
        if self.s3_access_key and self.s3_secret_key:
            return self.s3_access_key, self.s3_secret_key
        if not self.embedded_s3:
            raise MissingSecretError(
                "TUNESMITH_S3_ACCESS_KEY and TUNESMITH_S3_SECRET_KEY must be set for the "
                f"external store {self.s3_endpoint}"
            )
        home, setting = self.resolved_home, "TUNESMITH_S3_ACCESS_KEY and _SECRET_KEY"
        return (
            read_local_secret(home, "s3_access_key", setting=setting),
            read_local_secret(home, "s3_secret_key", setting=setting),
        )

    @property
    def s3_target(self) -> str:
        return self.s3_endpoint or f"127.0.0.1:{self.s3_port}"

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_s3(self) -> bool:
        return self.s3_endpoint is None

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    def workflow_url(self, job_id: str) -> str:
        """Web UI link to a job's workflow run."""
        return f"{self.ui_url}/namespaces/{self.temporal_namespace}/workflows/{job_id}"


def _without_password(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    return f"{userinfo.split(':', 1)[0]}{at}{host}" if at else netloc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
