"""Classify what a model backend raised into typed Temporal `ApplicationError`s.

The type name is what workflows, retry policies and metrics key on:

| type                  | retry | cause                                                        |
|-----------------------|-------|--------------------------------------------------------------|
| ModelOutOfMemory      | yes   | CUDA / host OOM; details carry a hint to shrink the window    |
| ModelTimeout          | yes   | the render overran its time budget                            |
| ModelCrashed          | yes   | any other error inside the model (a fresh attempt may differ) |
| InvalidConditioning   | no    | the model cannot honour these controls (melody on text-only)  |
| ModelWeightsMissing   | no    | the worker has no weights for the model: retrying cannot help |
| UnknownModel          | yes   | not served here; another worker may serve it                  |

torch is never imported here: OOM errors are recognised by class name and message, so this
module (and its tests) work in the light install.
"""

from __future__ import annotations

import concurrent.futures
from typing import Final

from temporalio.exceptions import ApplicationError

from activities.inference.backend import UnsupportedControlsError

MODEL_OUT_OF_MEMORY: Final = "ModelOutOfMemory"
MODEL_TIMEOUT: Final = "ModelTimeout"
MODEL_CRASHED: Final = "ModelCrashed"
INVALID_CONDITIONING: Final = "InvalidConditioning"
MODEL_WEIGHTS_MISSING: Final = "ModelWeightsMissing"
UNKNOWN_MODEL: Final = "UnknownModel"  # same string as schemas.errors.UNKNOWN_MODEL

FAILURE_TYPES: Final = (
    MODEL_OUT_OF_MEMORY,
    MODEL_TIMEOUT,
    MODEL_CRASHED,
    INVALID_CONDITIONING,
    MODEL_WEIGHTS_MISSING,
    UNKNOWN_MODEL,
)
NON_RETRYABLE_FAILURE_TYPES: Final = (INVALID_CONDITIONING, MODEL_WEIGHTS_MISSING)

# Substrings of allocator messages that mean out-of-memory when raised as a plain RuntimeError
# (older torch, CPU allocator, MPS).
_OOM_MESSAGES: Final = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "cublas_status_alloc_failed",
)


class UnknownModelError(LookupError):
    """No backend is registered under this model id (or this worker does not serve it)."""


class ModelWeightsMissingError(FileNotFoundError):
    """The model's weights are not in the worker's models dir (workers never download)."""


class GenerationTimeoutError(TimeoutError):
    """A render overran its time budget."""


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM (`torch.cuda.OutOfMemoryError`, a RuntimeError subclass), host `MemoryError`,
    or an allocator RuntimeError whose message says it ran out."""
    if isinstance(exc, MemoryError):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    if isinstance(exc, RuntimeError):
        message = str(exc).lower()
        return any(marker in message for marker in _OOM_MESSAGES)
    return False


def classify(exc: BaseException, *, model_id: str | None = None) -> ApplicationError:
    """The `ApplicationError` to raise from the activity for `exc` (chain it: `from exc`).

    An `ApplicationError` passes through unchanged. `details[0]` is a dict with the model id,
    the original exception class and, for OOM, a retry hint.
    """
    if isinstance(exc, ApplicationError):
        return exc
    where = f" ({model_id})" if model_id else ""
    info: dict[str, object] = {"model_id": model_id, "exception": type(exc).__name__}
    message = str(exc) or type(exc).__name__
    if isinstance(exc, UnsupportedControlsError):
        return ApplicationError(
            f"invalid conditioning{where}: {message}",
            info,
            type=INVALID_CONDITIONING,
            non_retryable=True,
        )
    if isinstance(exc, ModelWeightsMissingError):
        return ApplicationError(
            f"model weights missing{where}: {message}",
            info,
            type=MODEL_WEIGHTS_MISSING,
            non_retryable=True,
        )
    if isinstance(exc, UnknownModelError):
        return ApplicationError(message, info, type=UNKNOWN_MODEL)
    if is_out_of_memory(exc):
        info["hint"] = "retry with a smaller batch or a shorter window (max_window_s)"
        return ApplicationError(f"out of memory{where}: {message}", info, type=MODEL_OUT_OF_MEMORY)
    # TimeoutError covers asyncio.TimeoutError and concurrent.futures.TimeoutError (3.11).
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
        return ApplicationError(f"generation timed out{where}: {message}", info, type=MODEL_TIMEOUT)
    return ApplicationError(f"model crashed{where}: {message}", info, type=MODEL_CRASHED)
