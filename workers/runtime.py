"""Builds and runs the CPU and GPU workers (used by `tunesmith worker cpu|gpu`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

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
from schemas.names import CPU_TASK_QUEUE, GPU_TASK_QUEUE
from workflows.deliver_webhooks import DeliverJobEvents
from workflows.generate_track import GenerateTrack

log = logging.getLogger("tunesmith.worker")


def cpu_activities(
    db: Database, store: ObjectStore, settings: Settings
) -> list[Callable[..., Awaitable[object]]]:
    """Every activity the CPU queue serves, bound to its dependencies."""
    return [
        ControlActivities(db, store).normalize_controls,
        PostprocessActivities(store, db).postprocess,
        SimilarityActivities(store, db).check_similarity,
        ReviewActivities(db).record_review,
        PublishActivities(store, db, settings.draft_price_cents_per_minute).publish,
        JobActivities(db).finish_job,
        WebhookActivities(
            db, secret=settings.webhook_secret, timeout_s=settings.webhook_timeout_s
        ).deliver_webhooks,
    ]


def build_worker(
    kind: str, client: Client, db: Database, store: ObjectStore, settings: Settings,
    registry: ModelRegistry | None = None,
) -> Worker:  # fmt: skip
    """The worker for `kind` ("cpu": workflows + CPU activities; "gpu": generate_audio)."""
    if kind == "cpu":
        return Worker(
            client,
            task_queue=CPU_TASK_QUEUE,
            workflows=[GenerateTrack, DeliverJobEvents],
            activities=cpu_activities(db, store, settings),
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            # On SIGTERM, running steps get this long to finish before they are cancelled.
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
    if kind == "gpu":
        registry = registry or ModelRegistry(settings)
        return Worker(
            client,
            task_queue=GPU_TASK_QUEUE,
            activities=[InferenceActivities(registry, store, db).generate_audio],
            # One render at a time per accelerator; the pool scales by adding workers.
            max_concurrent_activities=1,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
    raise ValueError(f"unknown worker kind {kind!r}; expected 'cpu' or 'gpu'")


async def run_worker(kind: str, settings: Settings, ready_file: Path | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM, then drain and exit."""
    async with AsyncExitStack() as stack:
        client = await connect_temporal(settings)
        db = await Database.open(settings)
        stack.push_async_callback(db.close)
        store = ObjectStore(settings)
        registry = None
        if kind == "gpu":
            registry = ModelRegistry(settings)
            # Load the models now so the first job does not pay for it (keep-warm).
            for model_id in registry.served_models:
                await asyncio.to_thread(registry.get, model_id)
        worker = build_worker(kind, client, db, store, settings, registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            served = f" serving models {registry.served_models}" if registry else ""
            log.info("worker %s polling %s%s", kind, worker.task_queue, served)
            if ready_file is not None:
                ready_file.parent.mkdir(parents=True, exist_ok=True)
                ready_file.write_text(worker.task_queue)
            await stop.wait()
            log.info("worker %s shutting down", kind)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
