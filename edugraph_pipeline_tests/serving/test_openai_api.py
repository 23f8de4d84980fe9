"""`POST /v1/chat/completions` and `GET /v1/models` of the real service (uvicorn on a free local port, the tiny model)
called with the real `openai` client as upstream's app calls llama.cpp's server: legacy and v3 answers carry the
labels of `edugraph classify`; every bad request of the multipart tests, sent as a data URL, gets its 4xx while
good requests beside it succeed; an http:// image URL is refused without a connection to it."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time

import httpx
import openai
import pytest

from edugraph_pipeline.inference.classify_command import classify_main
from edugraph_pipeline.inference.contracts import closed_schema, render_answer
from edugraph_pipeline.serving.app import create_app
from edugraph_pipeline.serving.batching import BatchSettings
from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.kit.serving import png_bytes, running, wait_ready
from edugraph_pipeline_tests.serving.conftest import png_of_zeros
from edugraph_pipeline_tests.serving.test_service import LIMITS, MAX_NEW_TOKENS, count, metric_samples

UPSTREAM_TEXT = "Classify this task image."  # what upstream's app sends beside the image


@pytest.fixture(scope="module")
def service(served_model):
    app = create_app(lambda: served_model, limits=LIMITS, batching=BatchSettings(max_batch_images=4, window_s=0.05))
    with running(app) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            wait_ready(client)
        yield url


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_message(url: str, text: str | None = UPSTREAM_TEXT) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": text}] if text is not None else []
    return [{"role": "user", "content": [*content, {"type": "image_url", "image_url": {"url": url}}]}]


def upstream_request(url: str, schema: dict | None = None, **extra) -> dict:
    """The request upstream's app sends (CONTRACTS-2026.md), with `schema` in response_format when given."""
    request = {
        "model": "whatever-the-client-configured", "messages": image_message(url), "temperature": 0,
        "max_tokens": 512, "stream": False, "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
    }
    if schema is not None:
        request["response_format"] = {"type": "json_object", "schema": schema}
    request.update(extra)
    return request


@pytest.fixture(scope="module")
def sheets(tmp_path_factory, images):
    """The test pictures as PNG files, plus the first one as JPEG and WebP: (path, media type)."""
    folder = tmp_path_factory.mktemp("chat-sheets")
    files = []
    for index, image in enumerate(images):
        files.append((folder / f"sheet{index}.png", "image/png"))
        image.save(files[-1][0])
    for suffix, media_type, kind in ((".jpg", "image/jpeg", "JPEG"), (".webp", "image/webp", "WEBP")):
        files.append((folder / f"sheet0{suffix}", media_type))
        images[0].convert("RGB").save(files[-1][0], format=kind)
    return files


def test_openai_client_gets_the_labels_of_edugraph_classify(service, sheets, tiny_model_folder, ontology, capsys):
    status = classify_main([*(str(path) for path, _ in sheets), "--model", str(tiny_model_folder),
                            "--max-new-tokens", str(MAX_NEW_TOKENS)])
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0 and len(expected) == len(sheets)
    v3_schema, legacy_schema = closed_schema(ontology, "v3"), closed_schema(ontology, "legacy")
    variants = {  # name -> (request extras, contract)
        "upstream v3": ({"response_format": {"type": "json_object", "schema": v3_schema}}, "v3"),
        "json_schema legacy": ({"response_format": {"type": "json_schema",
                                                    "json_schema": {"name": "labels", "schema": legacy_schema}}},
                               "legacy"),
        "server default": ({}, "legacy"),
        "kwarg v3": ({"extra_body": {"chat_template_kwargs": {"answer_format": "v3"}}}, "v3"),
    }
    before = metric_samples(service)

    async def call_all():
        async with openai.AsyncOpenAI(base_url=f"{service}/v1", api_key="unused", max_retries=0) as client:
            calls = []
            for extras, _ in variants.values():
                for path, media_type in sheets:
                    request = upstream_request(data_url(path.read_bytes(), media_type))
                    request.update(extras)
                    calls.append(client.chat.completions.create(**request))
            return await asyncio.gather(*calls), await client.models.list()

    completions, models = asyncio.run(call_all())
    [listed] = models.data
    assert listed.id == f"edugraph-{ontology.version}-{model_version(tiny_model_folder)[:12]}"
    for index, completion in enumerate(completions):
        name, (_, contract) = list(variants.items())[index // len(sheets)]
        answer = expected[index % len(sheets)]
        [choice] = completion.choices
        assert json.loads(choice.message.content) == render_answer(answer, contract), (name, index)
        if contract == "v3":
            assert list(json.loads(choice.message.content)) == ["areas", "scopes", "abilities"]
        assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
        assert completion.model == listed.id and completion.object == "chat.completion"
        assert completion.system_fingerprint == model_version(tiny_model_folder)
        assert completion.usage.prompt_tokens > 50  # the prompt with the image's tokens
        assert 1 <= completion.usage.completion_tokens <= MAX_NEW_TOKENS + 1
        assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
        assert completion.model_extra["edugraph"]["answer_format"] == contract
        assert completion.model_extra["edugraph"]["ontology_version"] == ontology.version

    after = metric_samples(service)
    ok = {"route": "/v1/chat/completions", "status": "200"}
    assert count(after, "edugraph_http_requests_total", **ok) - count(before, "edugraph_http_requests_total", **ok) \
        == len(completions)
    batches = count(after, "edugraph_batch_images_count") - count(before, "edugraph_batch_images_count")
    assert batches < len(completions), "concurrent chat requests share batches"


def test_an_image_only_message_and_the_server_default(served_model, sheets, tiny_model_folder, capsys):
    path, _ = sheets[0]
    classify_main([str(path), "--model", str(tiny_model_folder), "--max-new-tokens", str(MAX_NEW_TOKENS)])
    expected = json.loads(capsys.readouterr().out)
    with running(create_app(lambda: served_model, answer_format="v3")) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            wait_ready(client)
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            answer = client.chat.completions.create(
                model="labeller", messages=image_message(data_url(path.read_bytes()), text=None)
            )
            legacy = client.chat.completions.create(
                model="labeller", messages=image_message(data_url(path.read_bytes())),
                extra_body={"chat_template_kwargs": {"answer_format": "legacy"}},
            )
    assert json.loads(answer.choices[0].message.content) == render_answer(expected, "v3")
    assert json.loads(legacy.choices[0].message.content) == expected


# ---- refusals ---------------------------------------------------------------------------------------------------


def chat_body(url: str) -> dict:
    return {"model": "m", "messages": image_message(url)}


def posted(body) -> dict:
    return {"json": body}


def raw(content, content_type: str = "application/json") -> dict:
    return {"content": content, "headers": {"content-type": content_type}}


async def _chunks_of(total: int, chunk: int = 256 * 1024):
    yield b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "'
    sent = 0
    while sent < total:
        yield b"A" * chunk
        sent += chunk
        await asyncio.sleep(0)


IMAGE_FIELD = "messages[0].content[1].image_url.url"


def bad_chat_requests(good_png: bytes) -> list[tuple[str, dict, int, str, str | None]]:
    """The multipart tests' bad inputs (`test_service.bad_requests`) as chat requests: (case, httpx kwargs, status,
    code, param)."""
    huge = b"-" * (LIMITS.max_request_bytes + 10)
    return [
        ("non-image", posted(chat_body(data_url(b"hello, not a picture"))), 422, "not_an_image", IMAGE_FIELD),
        ("truncated", posted(chat_body(data_url(good_png[: len(good_png) // 2]))), 422, "corrupt_image", IMAGE_FIELD),
        ("huge dimension", posted(chat_body(data_url(png_of_zeros(100000, 20, rows=0)))), 413, "image_too_large",
         IMAGE_FIELD),
        ("decompression bomb", posted(chat_body(data_url(png_of_zeros(4000, 4000)))), 413, "image_too_large",
         IMAGE_FIELD),
        ("pillow bomb", posted(chat_body(data_url(png_of_zeros(20000, 20000, rows=1)))), 413, "image_too_large",
         IMAGE_FIELD),
        ("empty file", posted(chat_body("data:image/png;base64,")), 422, "empty_file", IMAGE_FIELD),
        ("file too large", posted(chat_body(data_url(good_png + b"\0" * LIMITS.max_file_bytes))), 413,
         "file_too_large", IMAGE_FIELD),
        ("empty body", raw(b""), 400, "empty_body", None),
        ("multipart instead of JSON", {"files": {"file": ("a.png", good_png, "image/png")}}, 415,
         "unsupported_media_type", None),
        ("https url", posted(chat_body("https://example.com/sheet.png")), 400, "url_not_allowed", IMAGE_FIELD),
        ("file url", posted(chat_body("file:///etc/passwd")), 400, "url_not_allowed", IMAGE_FIELD),
        ("two images", posted({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(good_png)}},
            {"type": "image_url", "image_url": {"url": data_url(good_png)}}]}]}), 400, "too_many_images",
         "messages[0].content[1].image_url.url"),
        ("no image", posted({"messages": [{"role": "user", "content": "hello"}]}), 400, "no_image", "messages"),
        ("oversized request", raw(huge), 413, "request_too_large", None),
        ("oversized chunked", raw(_chunks_of(LIMITS.max_request_bytes + 2**20)), 413, "request_too_large", None),
        ("malformed JSON", raw(b'{"messages": [}'), 400, "bad_json", None),
        ("gif data", posted(chat_body(data_url(b"GIF89a" + b"\0" * 64, "image/gif"))), 415,
         "unsupported_media_type", IMAGE_FIELD),
        ("a GIF sent as PNG", posted(chat_body(data_url(gif_bytes()))), 415, "unsupported_media_type", IMAGE_FIELD),
        ("not base64", posted(chat_body("data:image/png;base64,%%%%")), 400, "bad_data_url", IMAGE_FIELD),
        ("not a base64 url", posted(chat_body("data:image/png," + "x" * 8)), 400, "bad_data_url", IMAGE_FIELD),
        ("stream", posted({**chat_body(data_url(good_png)), "stream": True}), 400, "unsupported_parameter", "stream"),
        ("tools", posted({**chat_body(data_url(good_png)), "tools": [{"type": "function"}]}), 400,
         "unsupported_parameter", "tools"),
        ("max_tokens below the bound", posted({**chat_body(data_url(good_png)), "max_tokens": 3}), 400,
         "max_tokens_too_small", "max_tokens"),
        ("temperature out of range", posted({**chat_body(data_url(good_png)), "temperature": 7}), 400,
         "bad_parameter", "temperature"),
        ("unknown response_format", posted({**chat_body(data_url(good_png)), "response_format": {"type": "xml"}}),
         400, "bad_parameter", "response_format.type"),
        ("schema of no contract", posted({**chat_body(data_url(good_png)), "response_format": {
            "type": "json_object", "schema": {"type": "object", "properties": {"labels": {"type": "array"}}}}}),
         400, "unsupported_schema", "response_format"),
        ("conflicting contracts", posted({**chat_body(data_url(good_png)), "chat_template_kwargs": {
            "answer_format": "legacy"}, "response_format": {"type": "json_object", "schema": {
                "type": "object", "properties": {"areas": {"type": "array"}}}}}),
         400, "conflicting_format", "chat_template_kwargs.answer_format"),
        ("image in a system message", posted({"messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": data_url(good_png)}}]}]}), 400, "bad_messages",
         "messages[0].content[0]"),
    ]


def gif_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="GIF")
    return buffer.getvalue()


def test_every_bad_chat_request_is_refused_while_good_requests_succeed(service, images, ontology):
    good = png_bytes(images[0])
    cases = bad_chat_requests(good)
    before = metric_samples(service)

    async def call_all():
        async with openai.AsyncOpenAI(base_url=f"{service}/v1", api_key="unused", max_retries=0) as client, \
                httpx.AsyncClient(base_url=service, timeout=120) as http:
            goods = [client.chat.completions.create(**upstream_request(data_url(good))) for _ in range(2)]
            bads = [http.post("/v1/chat/completions", **kwargs) for _, kwargs, *_ in cases]
            return await asyncio.gather(*goods, *bads)

    responses = asyncio.run(call_all())
    for completion in responses[:2]:
        labels = json.loads(completion.choices[0].message.content)
        assert set(labels) <= {"Area", "Scope", "Ability", "Error"}
    for (case, _, status, code, param), response in zip(cases, responses[2:]):
        assert response.status_code == status, (case, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (case, error)
        assert error["param"] == param, (case, error)
        assert error["type"] == "invalid_request_error" and error["message"], (case, error)
    by_case = {case[0]: response.json()["error"] for case, response in zip(cases, responses[2:])}
    assert "never fetches URLs" in by_case["https url"]["message"]
    assert "areas/scopes/abilities" in by_case["schema of no contract"]["message"]

    after = metric_samples(service)
    for code in {case[3] for case in cases}:
        times = sum(1 for case in cases if case[3] == code)
        name = "edugraph_request_errors_total"
        assert count(after, name, code=code) - count(before, name, code=code) == times, code


def test_schema_refusals_reach_the_openai_client_as_bad_request(service, images, ontology):
    good = data_url(png_bytes(images[0]))
    short = closed_schema(ontology, "v3")
    short["properties"]["areas"]["items"]["enum"] = short["properties"]["areas"]["items"]["enum"][1:]
    with openai.OpenAI(base_url=f"{service}/v1", api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(**upstream_request(good, short))
        assert refused.value.code == "unsupported_schema"
        assert f"leaves out 1 eligible Area label(s) of ontology release {ontology.version}" in \
            refused.value.body["message"]
        foreign = closed_schema(ontology, "v3")
        foreign["properties"]["scopes"]["items"]["enum"].append("IntegerAddition")
        with pytest.raises(openai.BadRequestError, match=r"IntegerAddition \(dimension Area\)"):
            client.chat.completions.create(**upstream_request(good, foreign))
        strict_legacy = closed_schema(ontology, "legacy")["anyOf"][0]
        with pytest.raises(openai.BadRequestError, match="UnsupportedMaterial"):
            client.chat.completions.create(**upstream_request(good, strict_legacy))


class Listener:
    """A local TCP listener that records every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_an_http_image_url_is_refused_and_never_fetched(service):
    listener = Listener()
    try:
        with openai.OpenAI(base_url=f"{service}/v1", api_key="unused", max_retries=0) as client:
            for url in (f"http://127.0.0.1:{listener.port}/sheet.png", f"HTTP://127.0.0.1:{listener.port}/x.jpg"):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(**upstream_request(url))
                assert refused.value.status_code == 400 and refused.value.code == "url_not_allowed"
        time.sleep(0.5)
        # the listener works: a connection made here is counted
        socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
        deadline = time.monotonic() + 5
        while listener.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.connections == 1, "the service connected to the image URL"
    finally:
        listener.close()


def test_models_route_and_not_ready(served_model):
    release = threading.Event()

    def load_when_released():
        release.wait(60)
        return served_model

    with running(create_app(load_when_released)) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError) as refused:
                client.models.list()
            assert refused.value.status_code == 503 and refused.value.code == "model_not_ready"
            release.set()
            with httpx.Client(base_url=url, timeout=60) as http:
                wait_ready(http)
                spec = http.get("/openapi.json").json()
            assert {"/v1/chat/completions", "/v1/models"} <= set(spec["paths"])
            [model] = client.models.list().data
            assert model.owned_by == "edugraph" and model.id == served_model.model_id
