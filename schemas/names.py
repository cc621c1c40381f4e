"""Names the outside world sees: task queues, workflow, activity and message names, search
attributes."""

from typing import Final

CPU_TASK_QUEUE: Final = "tunesmith-cpu"
GPU_TASK_QUEUE: Final = "tunesmith-gpu"  # histories from before per-model queues


def gpu_task_queue(model_id: str) -> str:
    """The GPU task queue of one model: only workers that serve the model poll it, so a job
    for a model no worker serves waits there and times out (schedule-to-start) instead of
    bouncing between workers that cannot run it."""
    return f"{GPU_TASK_QUEUE}-{model_id}"


# Workflow types.
GENERATE_TRACK_WORKFLOW: Final = "GenerateTrack"
DELIVER_JOB_EVENTS_WORKFLOW: Final = "DeliverJobEvents"
TAKEDOWN_WORKFLOW: Final = "Takedown"
AUDIT_REVIEW_REFUSAL_WORKFLOW: Final = "AuditReviewRefusal"  # the SDK's refused decisions

# Activity types: the `@activity.defn(name=...)` of each step and what the workflows schedule.
# Saved histories and in-flight jobs carry these strings: never rename one.
NORMALIZE_CONTROLS: Final = "normalize_controls"
GENERATE_AUDIO: Final = "generate_audio"  # the GPU queues
POSTPROCESS: Final = "postprocess"
CHECK_SIMILARITY: Final = "check_similarity"
AUTHORIZE_REVIEW: Final = "authorize_review"
ESCALATE_REVIEW: Final = "escalate_review"
RECORD_REVIEW: Final = "record_review"
AUDIT_REVIEW_REFUSAL: Final = "audit_review_refusal"
PUBLISH: Final = "publish"
FINISH_JOB: Final = "finish_job"
DELIVER_WEBHOOKS: Final = "deliver_webhooks"
TAKEDOWN_OPEN: Final = "takedown_open"
TAKEDOWN_QUARANTINE: Final = "takedown_quarantine"
TAKEDOWN_AUDIT: Final = "takedown_audit"
TAKEDOWN_RESTORE: Final = "takedown_restore"
TAKEDOWN_REMOVE: Final = "takedown_remove"

# Signals, updates and queries of GenerateTrack (the Takedown's are in schemas.takedown).
REVIEW_SIGNAL: Final = "review"
SUBMIT_REVIEW_UPDATE: Final = "submit_review"
STATUS_QUERY: Final = "status"

# Custom search attributes (all Keyword) registered when the dev server starts so that runs
# can be filtered in the Web UI, e.g. `TunesmithReviewState = "awaiting_review"`.
SA_STAGE: Final = "TunesmithStage"
SA_MODEL: Final = "TunesmithModel"
SA_PRODUCT: Final = "TunesmithProduct"
SA_REVIEW_STATE: Final = "TunesmithReviewState"
SA_TENANT: Final = "TunesmithTenant"
SEARCH_ATTRIBUTES: Final = (SA_STAGE, SA_MODEL, SA_PRODUCT, SA_REVIEW_STATE, SA_TENANT)
