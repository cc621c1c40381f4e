"""Builds and runs the CPU and GPU workers (used by `tunesmith worker cpu|gpu`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import asyncpg
import numpy as np
from temporalio.client import Client
from temporalio.worker import Worker

from activities.audio_io import read_audio
from activities.catalog.store import CatalogDB
from activities.controls.activity import ControlActivities
from activities.inference.activity import InferenceActivities
from activities.inference.registry import ModelRegistry
from activities.jobs.activity import JobActivities
from activities.postprocess.activity import PostprocessActivities
from activities.publish.activity import PublishActivities
from activities.publish.webhooks import WebhookActivities
from activities.review.activity import ReviewActivities
from activities.similarity.activity import SimilarityActivities
from infra.db import Database
from infra.settings import Settings
from infra.store import ObjectStore
from infra.temporal import connect_temporal
from schemas.names import CPU_TASK_QUEUE, GPU_TASK_QUEUE, gpu_task_queue
from workers import versioning
from workers.health import HealthServer
from workflows.audit_review_refusal import AuditReviewRefusal
from workflows.deliver_webhooks import DeliverJobEvents
from workflows.generate_track import GenerateTrack
from workflows.takedown import Takedown

log = logging.getLogger("tunesmith.worker")


def cpu_activities(
    db: Database, store: ObjectStore, settings: Settings
) -> list[Callable[..., Awaitable[object]]]:
    """Every activity the CPU queue serves, bound to its dependencies."""
    from activities.takedown.activity import TakedownActivities

    takedown = TakedownActivities(db, store)
    return [
        ControlActivities(db, store).normalize_controls,
        PostprocessActivities(store, db).postprocess,
        SimilarityActivities(store, db, settings.review_policy_dir).check_similarity,
        ReviewActivities(db).record_review,
        ReviewActivities(db).authorize_review,
        ReviewActivities(db).escalate_review,
        ReviewActivities(db).audit_review_refusal,
        PublishActivities(store, db, settings.draft_price_cents_per_minute).publish,
        JobActivities(db).finish_job,
        WebhookActivities(
            db, secret=settings.webhook_secret, timeout_s=settings.webhook_timeout_s
        ).deliver_webhooks,
        takedown.open,
        takedown.quarantine,
        takedown.audit,
        takedown.restore,
        takedown.remove,
    ]


def build_workers(
    kind: str, client: Client, db: Database, store: ObjectStore, settings: Settings,
    registry: ModelRegistry | None = None,
) -> list[Worker]:  # fmt: skip
    """The workers of one process of `kind`.

    "cpu": workflows + CPU activities on one queue, as a version of the Worker Deployment
    (workers/versioning.py). "gpu": `generate_audio` on one queue per
    served model (plus the pre-per-model queue for the draft model, for in-flight jobs), all
    sharing one concurrency limit (`gpu_max_concurrent`) and the warm registry.
    """
    if kind == "cpu":
        return [
            Worker(
                client,
                task_queue=CPU_TASK_QUEUE,
                workflows=[GenerateTrack, DeliverJobEvents, Takedown, AuditReviewRefusal],
                activities=cpu_activities(db, store, settings),
                max_concurrent_activities=settings.worker_max_concurrent_activities,
                deployment_config=versioning.deployment_config(settings),
                # On SIGTERM, running steps get this long to finish before they are cancelled.
                graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            )
        ]
    if kind == "gpu":
        registry = registry or ModelRegistry(settings, reference_loader=_store_loader(store))
        limit = settings.gpu_max_concurrent
        activities = InferenceActivities(registry, store, db, max_concurrent=limit)
        queues = [gpu_task_queue(m) for m in registry.served_models]
        if "draft" in registry.served_models:
            queues.append(GPU_TASK_QUEUE)
        return [
            Worker(
                client,
                task_queue=queue,
                activities=[activities.generate_audio],
                max_concurrent_activities=limit,
                graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_s),
            )
            for queue in queues
        ]
    raise ValueError(f"unknown worker kind {kind!r}; expected 'cpu' or 'gpu'")


def _store_loader(store: ObjectStore) -> Callable[[str], tuple[np.ndarray, int]]:
    """Reference audio for audio-conditioned models, read from the artifact store by URI."""

    def load(uri: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="tunesmith-ref-") as tmp:
            samples, rate = read_audio(store.download(uri, Path(tmp) / "reference"))
        return samples, rate

    return load


async def _warm_catalog(db: Database) -> None:
    """Load the catalog's fingerprint index into PostgreSQL's buffers (see `CatalogDB.warm`)."""
    started = time.perf_counter()
    try:
        rows = await CatalogDB(db.pool).warm()
    except (asyncpg.PostgresError, OSError) as e:
        log.warning("could not warm the catalog fingerprint index: %s", e)
        return
    log.info(
        "catalog fingerprint index warm: %d rows in %.1f s", rows, time.perf_counter() - started
    )


async def _warm_cpu_steps() -> None:
    """Imports, numba JIT, encoders and plotting of post-processing and the melody profile,
    paid once here instead of inside the first job (see `activities/postprocess/warmup.py`)."""
    from activities.postprocess.warmup import warm_cpu_steps

    try:
        took = await asyncio.to_thread(warm_cpu_steps)
    except Exception as e:  # a job would hit the same error and report it; the worker serves
        log.warning("could not warm the CPU steps: %s", e)
        return
    log.info("CPU steps warm (imports, JIT, encoders) in %.1f s", took)


async def run_worker(kind: str, settings: Settings, ready_file: Path | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM, then drain and exit."""
    if kind == "cpu":
        # Load the features embedding first: a bad TUNESMITH_CLAP_MODEL_DIR stops the worker
        # here (EmbeddingExtractorError) instead of failing every postprocess attempt.
        from activities.postprocess.embedding import embedding_extractor

        extractor = await asyncio.to_thread(embedding_extractor, settings)
        log.info("features embedding: %s", extractor.model_id)
        if settings.watermark_enabled:
            # Likewise a missing watermark key (MissingSecretError): never a key of our own.
            from activities.disclosure.identity import watermark_key

            key = watermark_key(settings)
            log.info("watermark key %s from %s", key.key_id, key.source)
    async with AsyncExitStack() as stack:
        client = await connect_temporal(settings)
        db = await Database.open(settings)
        stack.push_async_callback(db.close)
        store = ObjectStore(settings)
        health = HealthServer({
            "temporal": client.service_client.check_health,
            "database": lambda: db.pool.fetchval("SELECT 1"),
            "store": lambda: asyncio.to_thread(store.client.bucket_exists, settings.raw_bucket),
        })  # fmt: skip
        if settings.health_port is not None:
            port = await health.start(settings.health_host, settings.health_port)
            stack.push_async_callback(health.close)
            log.info("health on http://%s:%d/readyz", settings.health_host, port)
            if ready_file is not None:  # the local stack finds the port here
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.with_suffix(".health").write_text(f"{settings.health_host}:{port}")
        if kind == "cpu":
            # In the background: a cold index makes the first checks slower, not wrong.
            warming = asyncio.create_task(_warm_catalog(db))
            stack.callback(warming.cancel)
            # Likewise in the background: a job that arrives first only waits for the imports.
            warming_steps = asyncio.create_task(_warm_cpu_steps())
            stack.callback(warming_steps.cancel)
        registry = None
        if kind == "gpu":
            registry = ModelRegistry(settings, reference_loader=_store_loader(store))
            # Load the models now so the first job does not pay for it (keep-warm).
            for model_id in registry.served_models:
                await asyncio.to_thread(registry.get, model_id)
        workers = build_workers(kind, client, db, store, settings, registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            queues = ", ".join(w.task_queue for w in workers)
            served = f" serving models {registry.served_models}" if registry else ""
            if kind == "cpu" and settings.worker_versioning:
                build = versioning.build_id(settings)
                served = f" as {settings.deployment_name}:{build}"
                if settings.rollout == "auto":
                    await versioning.promote_when_polling(client, settings, build)
                    served += " (current)"
            log.info("worker %s polling %s%s", kind, queues, served)
            health.ready = True
            if ready_file is not None:
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.write_text(queues + served)
            await stop.wait()
            health.stopping = True  # not ready: an orchestrator stops routing to us
            log.info("worker %s shutting down (up to %g s for running steps)", kind,
                     settings.graceful_shutdown_s)  # fmt: skip
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
            ready_file.with_suffix(".health").unlink(missing_ok=True)
