"""OpenAI-compatible chat completions over the classify path: ``POST /v1/chat/completions`` and ``GET /v1/models``.

What upstream's app sends to llama.cpp's server works here unchanged: one user message with an ``image_url`` part
holding a ``data:`` URL (and optionally text parts), ``temperature``, ``max_tokens``, ``stream: false``,
``chat_template_kwargs`` and a ``response_format`` (``json_object`` with ``schema``, or ``json_schema``). The
image goes through the same batch queue, constrained decoding and repair as ``/v1/classify``: the model answers
the prompt it was trained on, so text and system parts are accepted and do not change the answer, and decoding is
greedy whatever the temperature. The answer contract (`inference.contracts`) is the one the response schema asks
for, else ``chat_template_kwargs.answer_format``, else the server's default; a schema the classifier cannot
satisfy is a 400 naming why. Errors take OpenAI's shape (`service.openai_error`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from edugraph_pipeline.inference.contracts import SchemaRefused, format_of_schema, render_text
from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.prompts import ANSWER_FORMATS
from edugraph_pipeline.serving.data_urls import decode_data_url
from edugraph_pipeline.serving.model import ServedModel
from edugraph_pipeline.serving.service import (
    CHAT_ROUTE,
    MODELS_ROUTE,
    RequestTooLarge,
    ServiceState,
    answer,
    not_ready,
    refuse,
)
from edugraph_pipeline.serving.uploads import UploadLimits, UploadRejected

MAX_TEXT_BYTES = 64 * 1024  # all text parts of a request together
ROLES = ("system", "developer", "user", "assistant")
# Fields that would change what an answer is; everything else OpenAI defines (top_p, seed, user, ...) is accepted
# and has no effect on greedy, constrained decoding.
_REFUSED_WHEN_SET = {"tools": "tool calls", "functions": "function calls", "tool_choice": "tool calls",
                     "audio": "audio output", "prediction": "predicted outputs"}


def bad(code: str, message: str, param: str | None = None, status: int = 400) -> UploadRejected:
    return UploadRejected(status, code, message, param)


@dataclass(frozen=True)
class ChatRequest:
    image_url: Any  # the data: URL, decoded later (in a thread)
    image_field: str  # where it was: "messages[0].content[1].image_url.url"
    answer_format: str


def parse_chat_request(body: Any, ontology: Ontology, default_format: str, max_new_tokens: int) -> ChatRequest:
    """Check every field a chat request may carry; `UploadRejected` (4xx, OpenAI `param`) for the first bad one."""
    if not isinstance(body, dict):
        raise bad("bad_json", "the request body must be a JSON object")
    image_url, image_field = _the_image(body.get("messages"))
    _check_options(body, max_new_tokens)
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise bad("bad_parameter", "chat_template_kwargs: expected an object", "chat_template_kwargs")
    kwargs = kwargs or {}
    if "enable_thinking" in kwargs and not isinstance(kwargs["enable_thinking"], bool):
        raise bad("bad_parameter", "enable_thinking: expected true or false", "chat_template_kwargs.enable_thinking")
    asked = kwargs.get("answer_format")
    if asked is not None and asked not in ANSWER_FORMATS:
        raise bad("bad_parameter", f"answer_format: {asked!r}, expected one of {', '.join(ANSWER_FORMATS)}",
                  "chat_template_kwargs.answer_format")
    from_schema = _format_of_response(body.get("response_format"), ontology)
    if from_schema is not None and asked is not None and from_schema != asked:
        raise bad("conflicting_format", f"response_format asks for the {from_schema} contract, "
                  f"chat_template_kwargs.answer_format for {asked}", "chat_template_kwargs.answer_format")
    return ChatRequest(image_url, image_field, from_schema or asked or default_format)


def _the_image(messages: Any) -> tuple[Any, str]:
    if not isinstance(messages, list) or not messages:
        raise bad("bad_messages", "messages: expected a non-empty list of messages", "messages")
    images: list[tuple[Any, str]] = []
    text_bytes = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad("bad_messages", f"{where}: expected an object with role and content", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad("bad_messages", f"{where}.role: {role!r}, expected one of {', '.join(ROLES)}", f"{where}.role")
        content = message.get("content")
        if content is None and role == "assistant":
            continue
        if isinstance(content, str):
            text_bytes += len(content.encode("utf-8", errors="replace"))
            continue
        if not isinstance(content, list):
            raise bad("bad_messages", f"{where}.content: expected a string or a list of parts", f"{where}.content")
        for number, part in enumerate(content):
            at = f"{where}.content[{number}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise bad("bad_messages", f"{at}.text: expected a string", f"{at}.text")
                text_bytes += len(part["text"].encode("utf-8", errors="replace"))
            elif kind == "image_url":
                if role != "user":
                    raise bad("bad_messages", f"{at}: images belong in a user message, not {role}", at)
                holder = part.get("image_url")
                url = holder.get("url") if isinstance(holder, dict) else holder
                images.append((url, f"{at}.image_url.url" if isinstance(holder, dict) else f"{at}.image_url"))
            else:
                raise bad("unsupported_content", f"{at}.type: {kind!r}; parts are text or image_url", f"{at}.type")
    if text_bytes > MAX_TEXT_BYTES:
        raise bad("text_too_large", f"messages: {text_bytes} bytes of text, at most {MAX_TEXT_BYTES}", "messages",
                  status=413)
    if not images:
        raise bad("no_image", "messages: no image_url part; a chat completion classifies one image", "messages")
    if len(images) > 1:
        raise bad("too_many_images", f"messages: {len(images)} images; a chat completion classifies one image "
                  "(send one request per image: concurrent requests are batched)", images[1][1])
    return images[0]


def _check_options(body: dict, max_new_tokens: int) -> None:
    for name, what in _REFUSED_WHEN_SET.items():
        if body.get(name) not in (None, [], "none", "auto"):
            raise bad("unsupported_parameter", f"{name}: {what} are not supported; the answer is the labels", name)
    if body.get("stream") not in (None, False):
        raise bad("unsupported_parameter", "stream: only stream: false is supported", "stream")
    if body.get("logprobs") not in (None, False):
        raise bad("unsupported_parameter", "logprobs: not supported", "logprobs")
    if body.get("n") not in (None, 1):
        raise bad("unsupported_parameter", "n: one choice per request", "n")
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        raise bad("bad_parameter", f"temperature: {temperature!r}, expected a number from 0 to 2", "temperature")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad("bad_parameter", f"{name}: {value!r}, expected a positive integer", name)
        if value < max_new_tokens:
            raise bad("max_tokens_too_small", f"{name}: {value}; a complete answer may take up to {max_new_tokens} "
                      "tokens (the server's --max-new-tokens), so fewer could cut it short", name)


def _format_of_response(response_format: Any, ontology: Ontology) -> str | None:
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise bad("bad_parameter", "response_format: expected an object", "response_format")
    kind = response_format.get("type")
    try:
        if kind == "text" or (kind == "json_object" and "schema" not in response_format):
            return None
        if kind == "json_object":
            return format_of_schema(response_format["schema"], ontology, "response_format.schema")
        if kind == "json_schema":
            wrapper = response_format.get("json_schema")
            if not isinstance(wrapper, dict) or "schema" not in wrapper:
                raise bad("bad_parameter", "response_format.json_schema: expected an object with a schema",
                          "response_format.json_schema")
            return format_of_schema(wrapper["schema"], ontology, "response_format.json_schema.schema")
    except SchemaRefused as refused:
        raise bad("unsupported_schema", str(refused), "response_format") from None
    raise bad("bad_parameter", f"response_format.type: {kind!r}, expected text, json_object or json_schema",
              "response_format.type")


def completion(result, request: ChatRequest, model: ServedModel) -> dict:
    """The chat.completion object of one classified image."""
    repairs = {key: value for key, value in (
        ("unknown", result.unknown), ("remapped", result.remapped), ("moved", result.moved),
        ("ineligible", result.ineligible), ("incompatible", result.incompatible),
    ) if value}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.model_id,
        "system_fingerprint": model.revision,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": render_text(result.answer, request.answer_format)},
            "logprobs": None,
            "finish_reason": result.finish_reason or "stop",
        }],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
        "edugraph": {
            "answer_format": request.answer_format, "backend": model.backend,
            "ontology_version": model.ontology_version, "model_revision": model.revision,
            "repaired": bool(result.repaired or repairs), **repairs,
        },
    }


async def read_json(request: Request, limits: UploadLimits) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise bad("unsupported_media_type", f"expected application/json, got {media_type or 'no Content-Type'}",
                  status=415)
    try:
        raw = await request.body()
    except RequestTooLarge:
        raise bad("request_too_large", f"request body over {limits.max_request_bytes} bytes", status=413) from None
    if not raw.strip():
        raise bad("empty_body", "empty request body: send a chat completion request")
    try:
        return await asyncio.to_thread(json.loads, raw)  # up to the body cap of JSON: off the event loop
    except (ValueError, RecursionError) as error:
        raise bad("bad_json", f"the body is not JSON ({error})") from None


def add_chat_routes(app: FastAPI, state: ServiceState, limits: UploadLimits) -> None:
    @app.get(MODELS_ROUTE)
    async def models() -> JSONResponse:
        """The served model, as OpenAI's model list (any `model` value of a request is answered by it)."""
        if state.model is None:
            return refuse(state, not_ready(state), openai=True)
        model = state.model
        return JSONResponse({"object": "list", "data": [{
            "id": model.model_id, "object": "model", "created": int(model.loaded_at), "owned_by": "edugraph",
            "edugraph": model.describe(),
        }]})

    @app.post(CHAT_ROUTE, responses={code: {"description": what} for code, what in (
        (400, "a malformed request, a non-data: image URL, a response schema the classifier cannot satisfy"),
        (408, "the request did not arrive within the request timeout"),
        (413, "the body, the image or its pixels over the limits"),
        (415, "not application/json; an image that is no PNG, JPEG or WebP"),
        (422, "an image that cannot be read (not an image, truncated, empty)"),
        (503, "the model is not loaded yet"),
        (504, "no answer within the request timeout"),
    )})
    async def chat_completions(request: Request) -> JSONResponse:
        """OpenAI chat completion of one image (a data: URL): the labels in ``choices[0].message.content``."""
        if state.model is None or state.queue is None:
            return refuse(state, not_ready(state), openai=True)
        model, started = state.model, time.monotonic()
        try:
            try:
                async with asyncio.timeout(limits.request_timeout_s):
                    body = await read_json(request, limits)
            except TimeoutError:
                raise bad("request_timeout", f"request not complete within {limits.request_timeout_s:g} s",
                          status=408) from None
            parsed = parse_chat_request(
                body, model.classifier.ontology, state.answer_format, model.classifier.backend.spec.max_new_tokens
            )
            # Decoding is CPU work: in a thread, so the event loop keeps answering meanwhile.
            image = await asyncio.to_thread(decode_data_url, parsed.image_url, parsed.image_field, limits)
            [result] = await answer(state, [image], limits, started)
        except UploadRejected as rejection:
            return refuse(state, rejection, openai=True)
        return JSONResponse(completion(result, parsed, model))
