"""The real service (uvicorn on a free local port, the tiny model) called with httpx: answers identical to
`edugraph classify`, every bad input refused with its 4xx while good requests beside it succeed, metrics."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edugraph_pipeline.inference.classify_command import classify_main
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.serving.app import create_app
from edugraph_pipeline.serving.batching import BatchSettings
from edugraph_pipeline.serving.uploads import UploadLimits
from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.kit.serving import png_bytes, running, wait_ready
from edugraph_pipeline_tests.serving.conftest import png_of_zeros

MAX_NEW_TOKENS = 24  # the `classifier` fixture's bound
LIMITS = UploadLimits(
    max_files=4, max_request_bytes=2 * 2**20, max_file_bytes=2**20, max_pixels=1024 * 1024, request_timeout_s=60
)


@pytest.fixture(scope="module")
def service(served_model):
    app = create_app(lambda: served_model, limits=LIMITS, batching=BatchSettings(max_batch_images=4, window_s=0.05))
    with running(app) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            wait_ready(client)
        yield url


@pytest.fixture(scope="module")
def sheet_files(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("sheets")
    paths = []
    for index, image in enumerate(images):
        path = folder / f"sheet{index}.png"
        image.save(path)
        paths.append(path)
    return paths


def metric_samples(url: str) -> dict[tuple, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def count(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def assert_valid(answer: dict, ontology) -> None:
    if answer == UNSUPPORTED_MATERIAL:
        return
    assert list(answer) == ["Area", "Scope", "Ability"]
    for dimension, names in answer.items():
        assert names == sorted(set(names))
        assert all(ontology.concepts[name].dimension == dimension for name in names)


def test_answers_are_those_of_edugraph_classify(service, sheet_files, tiny_model_folder, ontology, capsys):
    status = classify_main([*map(str, sheet_files), "--model", str(tiny_model_folder),
                            "--max-new-tokens", str(MAX_NEW_TOKENS)])
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0 and len(expected) == len(sheet_files)
    before = metric_samples(service)

    async def call_all():
        async with httpx.AsyncClient(base_url=service, timeout=120) as client:
            one_each = [
                client.post("/v1/classify", files={"file": (path.name, path.read_bytes(), "image/png")})
                for path in sheet_files
            ]
            together = client.post(
                "/v1/classify", files=[("files", (p.name, p.read_bytes(), "image/png")) for p in sheet_files]
            )
            return await asyncio.gather(*one_each, together)

    responses = asyncio.run(call_all())
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    for body in bodies:
        assert body["backend"] == "transformers"
        assert body["ontology_version"] == ontology.version
        assert body["model_revision"] == model_version(tiny_model_folder)
    assert [body["results"][0] for body in bodies[:3]] == [
        {"file": path.name, "answer": answer} for path, answer in zip(sheet_files, expected)
    ]
    assert bodies[3]["results"] == [{"file": p.name, "answer": a} for p, a in zip(sheet_files, expected)]
    for answer in expected:
        assert_valid(answer, ontology)

    after = metric_samples(service)
    images = count(after, "edugraph_images_classified_total") - count(before, "edugraph_images_classified_total")
    batches = count(after, "edugraph_batch_images_count") - count(before, "edugraph_batch_images_count")
    assert images == 6
    assert count(after, "edugraph_batch_images_sum") - count(before, "edugraph_batch_images_sum") == 6
    assert 2 <= batches < 4, "4 concurrent requests (6 images, at most 4 per batch) must share batches"
    ok = ("edugraph_http_requests_total", {"route": "/v1/classify", "status": "200"})
    assert count(after, ok[0], **ok[1]) - count(before, ok[0], **ok[1]) == 4


def _multipart(name: str, data: bytes, field: str = "file") -> dict:
    return {"files": {field: (name, data, "application/octet-stream")}}


PART_HEADER = b'--x\r\nContent-Disposition: form-data; name="file"; filename="endless.png"\r\n\r\n'


async def _slow_chunks(total: int, chunk: int = 256 * 1024):
    """A well-formed file part that never ends, sent without Content-Length (chunked)."""
    yield PART_HEADER
    sent = 0
    while sent < total:
        yield b"x" * chunk
        sent += chunk
        await asyncio.sleep(0)


def bad_requests(good_png: bytes) -> list[tuple[str, dict, int, str, str | None]]:
    """(case, httpx request kwargs, status, error code, file named in the error)."""

    big_body = b"-" * (LIMITS.max_request_bytes + 10)
    return [
        ("non-image", _multipart("notes.txt", b"hello, not a picture"), 422, "not_an_image", "notes.txt"),
        ("truncated", _multipart("cut.png", good_png[: len(good_png) // 2]), 422, "corrupt_image", "cut.png"),
        ("huge dimension", _multipart("wide.png", png_of_zeros(100000, 20, rows=0)), 413, "image_too_large", "wide.png"),
        ("decompression bomb", _multipart("bomb.png", png_of_zeros(4000, 4000)), 413, "image_too_large", "bomb.png"),
        ("pillow bomb", _multipart("huge.png", png_of_zeros(20000, 20000, rows=1)), 413, "image_too_large",
         "huge.png"),
        ("empty file", _multipart("nothing.png", b""), 422, "empty_file", "nothing.png"),
        ("file too large", _multipart("heavy.png", good_png + b"\0" * LIMITS.max_file_bytes), 413, "file_too_large",
         "heavy.png"),
        ("empty body", {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400,
         "empty_body", None),
        ("json url", {"json": {"url": "https://example.com/sheet.png"}}, 415, "unsupported_media_type", None),
        ("url field", {"data": {"image": "https://example.com/sheet.png"},
                       "files": {"file": ("a.png", good_png, "image/png")}}, 400, "unexpected_field", "image"),
        ("too many files", {"files": [("f", (f"{i}.png", good_png, "image/png")) for i in range(5)]}, 413,
         "too_many_files", None),
        ("oversized request", {"content": big_body, "headers": {"content-type": "multipart/form-data; boundary=x"}},
         413, "request_too_large", None),
        ("oversized chunked", {"content": _slow_chunks(LIMITS.max_request_bytes + 2**20),
                               "headers": {"content-type": "multipart/form-data; boundary=x"}},
         413, "request_too_large", None),
        ("malformed multipart", {"content": b"this is no multipart body", "headers": {"content-type":
                                                                          "multipart/form-data; boundary=x"}},
         400, "bad_multipart", None),
    ]


def test_every_bad_input_is_refused_while_good_requests_succeed(service, images, ontology):
    good = png_bytes(images[0])
    cases = bad_requests(good)
    before = metric_samples(service)

    async def call_all():
        async with httpx.AsyncClient(base_url=service, timeout=120) as client:
            goods = [client.post("/v1/classify", files={"file": ("good.png", good, "image/png")}) for _ in range(2)]
            bads = [client.post("/v1/classify", **kwargs) for _, kwargs, *_ in cases]
            return await asyncio.gather(*goods, *bads)

    responses = asyncio.run(call_all())
    for response in responses[:2]:
        assert response.status_code == 200, response.text
        assert_valid(response.json()["results"][0]["answer"], ontology)
    for (case, _, status, code, file), response in zip(cases, responses[2:]):
        assert response.status_code == status, (case, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (case, error)
        assert error.get("file") == file, (case, error)
        if file:
            assert error["message"].startswith(f"{file}:") or file in error["message"], (case, error)
    url_case = dict((c[0], r) for c, r in zip(cases, responses[2:]))["url field"]
    assert "never fetches URLs" in url_case.json()["error"]["message"]

    # the service still answers afterwards, and /metrics counted every refusal by its code
    after_good = httpx.post(f"{service}/v1/classify", files={"file": ("again.png", good, "image/png")}, timeout=120)
    assert after_good.status_code == 200
    after = metric_samples(service)
    expected_codes: dict[str, int] = {}
    for _, _, _, code, _ in cases:
        expected_codes[code] = expected_codes.get(code, 0) + 1
    for code, times in expected_codes.items():
        name = "edugraph_request_errors_total"
        assert count(after, name, code=code) - count(before, name, code=code) == times, code
    for status in {c[2] for c in cases}:
        key = {"route": "/v1/classify", "status": str(status)}
        seen = count(after, "edugraph_http_requests_total", **key) - count(before, "edugraph_http_requests_total", **key)
        assert seen == sum(1 for c in cases if c[2] == status), status


def test_health_readiness_metrics_and_openapi(service, tiny_model_folder, ontology):
    with httpx.Client(base_url=service, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready == {
            "ready": True, "backend": "transformers", "model_revision": model_version(tiny_model_folder),
            "ontology_version": ontology.version, "model_folder": tiny_model_folder.name,
            "model_id": f"edugraph-{ontology.version}-{model_version(tiny_model_folder)[:12]}",
        }
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "edugraph_model_ready 1.0" in metrics.text
        assert "edugraph_http_request_duration_seconds_bucket" in metrics.text
        spec = client.get("/openapi.json").json()
        operation = spec["paths"]["/v1/classify"]["post"]
        assert "multipart/form-data" in operation["requestBody"]["content"]
        assert {"200", "413", "422"} <= set(operation["responses"])
        assert "swagger" in client.get("/docs").text.lower()
        assert client.get("/nowhere").status_code == 404
        assert client.get("/v1/classify").status_code == 405


def test_slow_upload_times_out_and_not_ready_is_503(served_model, images):
    import threading

    release = threading.Event()

    def load_when_released():
        release.wait(60)
        return served_model

    limits = UploadLimits(request_timeout_s=0.5)
    with running(create_app(load_when_released, limits=limits)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200  # up while the model is still loading
            assert client.get("/readyz").status_code == 503
            refused = client.post("/v1/classify", files={"file": ("a.png", png_bytes(images[0]), "image/png")})
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_not_ready"
            release.set()
            wait_ready(client)

            async def trickle():
                yield PART_HEADER
                await asyncio.sleep(2)
                yield b"never finished"

            async def slow_post():
                async with httpx.AsyncClient(base_url=url, timeout=30) as slow:
                    return await slow.post("/v1/classify", content=trickle(),
                                           headers={"content-type": "multipart/form-data; boundary=x"})

            slow = asyncio.run(slow_post())
            assert slow.status_code == 408 and slow.json()["error"]["code"] == "request_timeout"
            assert client.get("/healthz").status_code == 200


def test_an_answer_later_than_the_timeout_is_a_504_and_the_service_goes_on(served_model, images):
    # Four images through generation on the CPU take well over a second; the budget is a quarter of one.
    files = [("file", (f"{i}.png", png_bytes(images[i % len(images)]), "image/png")) for i in range(4)]
    with running(create_app(lambda: served_model, limits=UploadLimits(request_timeout_s=0.25))) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_ready(client)
            late = client.post("/v1/classify", files=files)
            assert late.status_code == 504 and late.json()["error"]["code"] == "classify_timeout", late.text
            assert client.get("/healthz").status_code == 200
            assert 'edugraph_request_errors_total{code="classify_timeout"} 1.0' in client.get("/metrics").text
