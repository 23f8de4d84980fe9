"""`edugraph gcp check` with the real Google API clients against a local stand-in speaking the REST APIs it reads
(Resource Manager, Cloud Storage, Artifact Registry, Compute Engine): a complete project passes; a missing role,
a zone without the GPU, a missing quota and a missing image are reported with their fix."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edugraph_pipeline.cloud.preflight import PreflightConfig, report, run_checks
from edugraph_pipeline_tests.kit.gcp import free_port

ACCOUNT = "trainer@edugraph-test.iam.gserviceaccount.com"
MEMBER = f"serviceAccount:{ACCOUNT}"
IMAGE = "europe-west4-docker.pkg.dev/edugraph-test/images/edugraph-trainer:1.2.3"


class FakeGoogleApis:
    def __init__(self) -> None:
        self.project_roles = ["roles/artifactregistry.reader", "roles/compute.instanceAdmin.v1"]
        self.bucket_roles = ["roles/storage.objectAdmin"]
        self.images = {"images/packages/edugraph-trainer/tags/1.2.3"}
        self.accelerators = {"europe-west4-a", "europe-west4-b"}
        self.quotas = {"europe-west4": [{"metric": "PREEMPTIBLE_NVIDIA_L4_GPUS", "limit": 4.0, "usage": 1.0}]}
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                fake.requests.append(path)
                code, payload = fake.route(path)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, path: str) -> tuple[int, dict]:
        not_found = (404, {"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})
        if path == "/v1/projects/edugraph-test":
            return 200, {"projectId": "edugraph-test", "projectNumber": "4242", "lifecycleState": "ACTIVE"}
        if path == "/v1/projects/edugraph-test:getIamPolicy":
            return 200, {"bindings": [{"role": r, "members": [MEMBER]} for r in self.project_roles]}
        if path == "/storage/v1/b/edugraph-bucket":
            return 200, {"name": "edugraph-bucket", "location": "EUROPE-WEST4"}
        if path == "/storage/v1/b/edugraph-bucket/iam":
            return 200, {"bindings": [{"role": r, "members": [MEMBER]} for r in self.bucket_roles]}
        tag = re.fullmatch(r"/v1/projects/edugraph-test/locations/europe-west4/repositories/(.+)", path)
        if tag:
            return (200, {"name": path[4:], "version": "x/versions/sha256:abc"}) if tag.group(1) in self.images else not_found
        accelerator = re.fullmatch(r"/compute/v1/projects/edugraph-test/zones/([^/]+)/acceleratorTypes/nvidia-l4", path)
        if accelerator:
            return (200, {"name": "nvidia-l4"}) if accelerator.group(1) in self.accelerators else not_found
        region = re.fullmatch(r"/compute/v1/projects/edugraph-test/regions/([^/]+)", path)
        if region:
            return 200, {"name": region.group(1), "quotas": self.quotas.get(region.group(1), [])}
        return not_found


@pytest.fixture
def apis():
    fake = FakeGoogleApis()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def config(apis: FakeGoogleApis, **changes) -> PreflightConfig:
    values = dict(project="edugraph-test", bucket="edugraph-bucket", image=IMAGE, zones=["europe-west4-a"],
                  service_account=ACCOUNT, endpoint=apis.endpoint)
    return PreflightConfig(**{**values, **changes})


def test_complete_project_passes(apis):
    checks = run_checks(config(apis, zones=["europe-west4-a", "europe-west4-b"]))
    assert all(c.ok for c in checks), report(checks)
    names = [c.name for c in checks]
    assert names[:3] == ["project", "bucket", "image"]
    assert "PREEMPTIBLE_NVIDIA_L4_GPUS in europe-west4: 3 free of 4" in report(checks)
    assert report(checks).endswith("everything the gcp and vertex launchers need is there")


def test_missing_role_and_capacity_are_reported_with_fixes(apis):
    apis.project_roles = ["roles/compute.instanceAdmin.v1"]  # no Artifact Registry reader: the VM cannot pull
    apis.accelerators = {"europe-west4-a"}
    apis.images = set()
    checks = run_checks(config(apis, zones=["europe-west4-a", "europe-west4-b"], spot=False))
    text = report(checks)
    missing = {c.name for c in checks if not c.ok}
    assert missing == {
        "image",
        "gpu europe-west4-a",  # on-demand quota (NVIDIA_L4_GPUS) is absent
        "gpu europe-west4-b",  # no L4 in that zone
        f"{ACCOUNT}: artifact registry reader (pull the training image)",
    }
    assert (f"fix: gcloud projects add-iam-policy-binding edugraph-test --member={MEMBER} "
            "--role=roles/artifactregistry.reader") in text
    assert "no NVIDIA_L4_GPUS quota in europe-west4" in text
    assert text.endswith("4 missing")


def test_default_service_account_and_missing_bucket_role(apis):
    apis.bucket_roles = []
    checks = run_checks(config(apis, service_account=None))
    (bucket_role,) = [c for c in checks if "storage object admin" in c.name]
    assert not bucket_role.ok
    assert bucket_role.name.startswith("4242-compute@developer.gserviceaccount.com")
    assert "--role=roles/storage.objectAdmin" in bucket_role.fix


def test_cli_names_what_is_unset(monkeypatch):
    from edugraph_pipeline.cli import main

    monkeypatch.delenv("EDUGRAPH_GCP_PROJECT", raising=False)
    monkeypatch.delenv("EDUGRAPH_GCS_BUCKET", raising=False)
    with pytest.raises(ValueError, match="edugraph gcp check needs EDUGRAPH_GCP_PROJECT, EDUGRAPH_GCS_BUCKET"):
        main(["gcp", "check"])
