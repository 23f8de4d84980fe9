"""What every route of the service shares: its state, refusals in either error shape, and decoded images -> answers.

Two error shapes: the service's own ``{"error": {"code", "message", "file"?}}`` (``/v1/classify``) and OpenAI's
``{"error": {"message", "type", "param", "code"}}`` (``/v1/chat/completions``, ``/v1/models``), so OpenAI clients
raise their usual exceptions. `answer` runs decoded images through the one batch queue under the request's time
budget, so both APIs batch together and answer alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from fastapi.responses import JSONResponse

from edugraph_pipeline.prompts import LEGACY
from edugraph_pipeline.serving.batching import BatchQueue
from edugraph_pipeline.serving.metrics import ServiceMetrics
from edugraph_pipeline.serving.model import ServedModel
from edugraph_pipeline.serving.uploads import UploadLimits, UploadRejected

log = logging.getLogger("edugraph.serving")

CLASSIFY_ROUTE = "/v1/classify"
CHAT_ROUTE = "/v1/chat/completions"
MODELS_ROUTE = "/v1/models"
OPENAI_ROUTES = (CHAT_ROUTE, MODELS_ROUTE)
ROUTES = (CLASSIFY_ROUTE, *OPENAI_ROUTES, "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")


class RequestTooLarge(Exception):
    """The body grew past the cap while it was being read (a client that sent no or a false Content-Length)."""


@dataclass
class ServiceState:
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    model: ServedModel | None = None
    queue: BatchQueue | None = None
    load_error: str | None = None
    answer_format: str = LEGACY  # the contract of a chat answer whose request names none


def openai_error(rejection: UploadRejected) -> dict:
    """OpenAI's error object: `file` of a chat request's rejection is the request field it concerns."""
    kind = "server_error" if rejection.status >= 500 else "invalid_request_error"
    return {"error": {"message": rejection.message, "type": kind, "param": rejection.file, "code": rejection.code}}


def refuse(state: ServiceState, rejection: UploadRejected, openai: bool = False) -> JSONResponse:
    state.metrics.errors.labels(rejection.code).inc()
    body = openai_error(rejection) if openai else rejection.to_json()
    return JSONResponse(body, status_code=rejection.status)


def not_ready(state: ServiceState) -> UploadRejected:
    return UploadRejected(503, "model_not_ready", state.load_error or "the model is loading")


async def answer(state: ServiceState, images: list, limits: UploadLimits, started: float) -> list:
    """`ClassifyResult`s of decoded images from the batch queue, within what is left of the request's timeout;
    `UploadRejected` 504 when it runs out, 500 when the model call failed (the service goes on)."""
    assert state.queue is not None
    try:
        async with asyncio.timeout(max(0.0, limits.request_timeout_s - (time.monotonic() - started))):
            results = await state.queue.submit(images)
    except TimeoutError:
        raise UploadRejected(504, "classify_timeout", f"no answer within {limits.request_timeout_s:g} s") from None
    except Exception as error:  # noqa: BLE001 - a model failure is this request's 500, the service goes on
        log.exception("classification failed")
        raise UploadRejected(500, "classify_failed", type(error).__name__) from None
    state.metrics.images.inc(len(results))
    return results
