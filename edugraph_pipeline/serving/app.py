"""The HTTP service: `create_app(load_model, ...)` -> a FastAPI app.

Routes: ``POST /v1/classify`` (multipart image files -> one upstream answer per file), the OpenAI-compatible
``POST /v1/chat/completions`` and ``GET /v1/models`` (`chat`), ``GET /healthz`` (the process answers), ``GET
/readyz`` (the model is loaded), ``GET /metrics`` (Prometheus text) and the OpenAPI page (``/docs``,
``/openapi.json``). The model loads in a thread after startup, so the health route answers while a large model is
still loading. The service only ever reads the bytes it is sent: it fetches no URL.

Every refusal is a JSON error with a 4xx status (`service.refuse`: the service's shape, OpenAI's on its routes),
produced before the request reaches the model, so a bad upload never costs a batch slot nor disturbs the requests
batched beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from edugraph_pipeline.inference.contracts import check_format
from edugraph_pipeline.prompts import LEGACY
from edugraph_pipeline.serving.batching import BatchQueue, BatchSettings
from edugraph_pipeline.serving.chat import add_chat_routes
from edugraph_pipeline.serving.model import ServedModel
from edugraph_pipeline.serving.service import (
    CLASSIFY_ROUTE,
    OPENAI_ROUTES,
    ROUTES,
    RequestTooLarge,
    ServiceState,
    answer,
    log,
    not_ready,
    refuse,
)
from edugraph_pipeline.serving.uploads import UploadLimits, UploadRejected, decode_upload, display_name

MAX_TEXT_FIELD_BYTES = 64 * 1024
MULTIPART = "multipart/form-data"


class ImageAnswer(BaseModel):
    file: str
    answer: dict[str, Any]  # {"Area": [...], "Scope": [...], "Ability": [...]} or {"Error": "UnsupportedMaterial"}


class ClassifyResponse(BaseModel):
    backend: str
    model_revision: str
    ontology_version: str
    results: list[ImageAnswer]


class RequestGuard:
    """ASGI middleware: caps the request body (by header, then by counting) and records route, status, latency."""

    def __init__(self, app, state: ServiceState, max_body: int):
        self.app, self.state, self.max_body = app, state, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        metrics, started = self.state.metrics, time.perf_counter()

        async def measured_send(message):
            if message["type"] == "http.response.start":
                metrics.latency.labels(route).observe(time.perf_counter() - started)
                metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length")
        refusal = None
        if declared is not None and not declared.isdigit():
            refusal = UploadRejected(400, "bad_content_length", "Content-Length is not a number")
        elif declared is not None and int(declared) > self.max_body:
            refusal = UploadRejected(
                413, "request_too_large", f"request body of {int(declared)} bytes, at most {self.max_body}"
            )
        if refusal is not None:
            openai = scope["path"] in OPENAI_ROUTES
            return await refuse(self.state, refusal, openai)(scope, receive, measured_send)

        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise RequestTooLarge()
            return message

        await self.app(scope, counted_receive, measured_send)


async def read_uploads(request: Request, limits: UploadLimits) -> list[tuple[str, bytes]]:
    """``(file name, bytes)`` of every file part, or `UploadRejected` for a request that is no image upload."""
    if request.headers.get("content-length") == "0":
        raise UploadRejected(400, "empty_body", "empty request body: send the images as multipart file parts")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != MULTIPART:
        raise UploadRejected(
            415, "unsupported_media_type",
            f"expected {MULTIPART} with one file part per image, got {media_type or 'no Content-Type'} "
            "(the service reads uploaded bytes only and never fetches URLs)",
        )
    try:
        form = await request.form(max_part_size=MAX_TEXT_FIELD_BYTES)
    except HTTPException as error:  # Starlette's multipart parser: malformed body, oversized text field
        raise UploadRejected(400, "bad_multipart", f"malformed multipart body: {error.detail}") from None
    except RequestTooLarge:
        raise UploadRejected(413, "request_too_large", f"request body over {limits.max_request_bytes} bytes") from None
    try:
        items = list(form.multi_items())
        if not items:
            raise UploadRejected(400, "empty_body", "no file parts: send the images as multipart file parts")
        for key, value in items:
            if not isinstance(value, UploadFile):
                hint = " (the service never fetches URLs: upload the image itself)" if "://" in value else ""
                raise UploadRejected(400, "unexpected_field", f"field {key!r} is not a file part{hint}", key)
        if len(items) > limits.max_files:
            raise UploadRejected(413, "too_many_files", f"{len(items)} files, at most {limits.max_files} per request")
        uploads = []
        for index, (_key, upload) in enumerate(items):
            name = display_name(upload.filename, index)
            data = await upload.read(limits.max_file_bytes + 1)
            if len(data) > limits.max_file_bytes:
                raise UploadRejected(
                    413, "file_too_large", f"{name}: over {limits.max_file_bytes} bytes", name
                )
            uploads.append((name, data))
        return uploads
    finally:
        await form.close()


def create_app(
    load_model: Callable[[], ServedModel],
    *,
    limits: UploadLimits = UploadLimits(),
    batching: BatchSettings = BatchSettings(),
    on_load_failure: Callable[[BaseException], None] | None = None,
    answer_format: str = LEGACY,
) -> FastAPI:
    """The service around the model `load_model` returns (called once, in a thread, after startup);
    `answer_format`: the contract of chat answers whose request names none."""
    state = ServiceState(answer_format=check_format(answer_format))

    async def load() -> None:
        try:
            model = await asyncio.to_thread(load_model)
        except Exception as error:  # noqa: BLE001 - reported on /readyz and to the caller, never swallowed
            state.load_error = f"{type(error).__name__}: {error}"
            log.error("model failed to load: %s", state.load_error)
            if on_load_failure is not None:
                on_load_failure(error)
            return
        state.queue = BatchQueue(
            lambda images: model.classify(images, batching.max_batch_images),
            max_batch_images=batching.max_batch_images,
            window_s=batching.window_s,
            on_batch=state.metrics.batch_images.observe,
        )
        state.queue.start()
        state.model = model
        state.metrics.ready.set(1)
        log.info("model ready: %s", model.describe())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        loader = asyncio.create_task(load())
        try:
            yield
        finally:
            loader.cancel()
            if state.queue is not None:
                await state.queue.stop()
            if state.model is not None:
                state.model.close()

    app = FastAPI(
        title="EduGraph worksheet labeller",
        summary="Labels K-4 math worksheet images with concepts of the bound EduGraph ontology release.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_middleware(RequestGuard, state=state, max_body=limits.max_request_bytes)
    add_chat_routes(app, state, limits)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if state.model is None:
            return JSONResponse({"ready": False, "error": state.load_error or "model loading"}, status_code=503)
        return JSONResponse({"ready": True, **state.model.describe()})

    @app.get("/metrics")
    async def metrics() -> Response:
        state.metrics.queue.set(state.queue.waiting if state.queue else 0)
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    @app.post(
        CLASSIFY_ROUTE,
        response_model=ClassifyResponse,
        responses={code: {"description": what} for code, what in (
            (400, "no image upload (empty body, non-file field, malformed multipart)"),
            (408, "the upload did not arrive within the request timeout"),
            (413, "too many files, a file or the request too large, an image over the pixel cap"),
            (415, "not multipart/form-data"),
            (422, "a file that is no readable image (not an image, truncated, empty)"),
            (503, "the model is not loaded yet"),
            (504, "no answer within the request timeout"),
        )},
        openapi_extra={"requestBody": {"required": True, "content": {MULTIPART: {"schema": {
            "type": "object",
            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
        }}}}},
    )
    async def classify(request: Request):
        """Classify one or more images (multipart file parts, any field name): one answer per file, in order."""
        if state.model is None or state.queue is None:
            return refuse(state, not_ready(state))
        started = time.monotonic()
        try:
            try:
                async with asyncio.timeout(limits.request_timeout_s):
                    uploads = await read_uploads(request, limits)
            except TimeoutError:
                raise UploadRejected(408, "request_timeout", f"upload not complete within "
                                     f"{limits.request_timeout_s:g} s") from None
            names = [name for name, _ in uploads]
            # Decoding is CPU work: in a thread, so the event loop keeps answering meanwhile.
            images = await asyncio.to_thread(lambda: [decode_upload(data, name, limits) for name, data in uploads])
            results = await answer(state, images, limits, started)
        except UploadRejected as rejection:
            return refuse(state, rejection)
        model = state.model
        return ClassifyResponse(
            backend=model.backend,
            model_revision=model.revision,
            ontology_version=model.ontology_version,
            results=[ImageAnswer(file=name, answer=result.answer) for name, result in zip(names, results)],
        )

    return app
