"""``edugraph gcp check``: what the gcp and vertex launchers need from a Google Cloud project, checked once, before a
training run finds out hours later. Read-only calls through the Google API clients (Application Default
Credentials): the project, the bucket, the training image in Artifact Registry, the GPU in each zone and its (spot)
quota, and the roles of the service account the training machine runs as. Prints what is missing and how to fix it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import quote

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import accelerators

# The roles the training machine's service account needs (docs/training-launchers.md, IAM), where, and why.
BUCKET_ROLES = ("roles/storage.objectAdmin", "roles/storage.objectUser", "roles/storage.admin")
PROJECT_ROLES = {
    "artifact registry reader (pull the training image)": (
        "roles/artifactregistry.reader",
        "roles/artifactregistry.writer",
        "roles/artifactregistry.admin",
    ),
    "instance admin (the VM deletes itself)": ("roles/compute.instanceAdmin.v1", "roles/compute.instanceAdmin"),
}
SECRET_ROLES = ("roles/secretmanager.secretAccessor", "roles/secretmanager.admin")
_REGISTRY = re.compile(r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/(?P<image>[^:@]+)(?::(?P<tag>[^@]+))?")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class PreflightConfig:
    project: str
    bucket: str
    image: str
    zones: list[str]
    accelerator: str = "nvidia-l4"
    accelerator_count: int = 1
    spot: bool = True
    service_account: str | None = None
    hf_token_secret: str | None = None
    endpoint: str | None = None  # one root for every API (tests: a local stand-in)

    @classmethod
    def from_settings(cls) -> PreflightConfig:
        missing = [n for n in ("EDUGRAPH_GCP_PROJECT", "EDUGRAPH_GCS_BUCKET") if not settings.setting(n)]
        if missing:
            raise ValueError(f"edugraph gcp check needs {', '.join(missing)} to be set")
        zones = [z.strip() for z in settings.setting("EDUGRAPH_GCP_ZONES").split(",") if z.strip()]
        return cls(
            project=settings.setting("EDUGRAPH_GCP_PROJECT"),
            bucket=settings.setting("EDUGRAPH_GCS_BUCKET"),
            image=settings.setting("EDUGRAPH_TRAINING_IMAGE"),
            zones=zones or [settings.setting("EDUGRAPH_GCP_ZONE")],
            accelerator=settings.setting("EDUGRAPH_GCP_ACCELERATOR"),
            accelerator_count=settings.integer("EDUGRAPH_GCP_ACCELERATOR_COUNT"),
            spot=settings.flag("EDUGRAPH_GCP_SPOT"),
            service_account=settings.setting("EDUGRAPH_GCP_SERVICE_ACCOUNT") or None,
            hf_token_secret=settings.setting("EDUGRAPH_GCP_HF_TOKEN_SECRET") or None,
        )


def _service(name: str, version: str, endpoint: str | None):
    from googleapiclient.discovery import build

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
        root = endpoint.rstrip("/") + {"compute": "/compute/v1/", "storage": "/storage/v1/"}.get(name, "/")
        options = {"api_endpoint": root}
    else:
        import google.auth

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        options = None
    return build(name, version, credentials=credentials, static_discovery=True, client_options=options,
                 cache_discovery=False)


def _error_text(error) -> str:
    status = getattr(getattr(error, "resp", None), "status", "")
    reason = getattr(error, "reason", "") or str(error)
    return f"HTTP {status}: {reason}".strip()


def _members(policy: dict, roles: tuple[str, ...]) -> set[str]:
    return {m for b in policy.get("bindings", []) if b.get("role") in roles for m in b.get("members", [])}


def _quota_metric(accelerator: str, spot: bool) -> str:
    """``nvidia-l4`` -> ``NVIDIA_L4_GPUS`` (``PREEMPTIBLE_NVIDIA_L4_GPUS`` for spot VMs)."""
    base = accelerator.upper().replace("-", "_").replace("NVIDIA_TESLA_", "NVIDIA_")
    base = {"NVIDIA_A100_80GB": "NVIDIA_A100_80GB"}.get(base, base)
    return ("PREEMPTIBLE_" if spot else "") + base + "_GPUS"


def run_checks(config: PreflightConfig) -> list[Check]:
    from googleapiclient.errors import HttpError

    checks: list[Check] = []
    crm = _service("cloudresourcemanager", "v1", config.endpoint)
    try:
        project = crm.projects().get(projectId=config.project).execute()
        state = project.get("lifecycleState", "ACTIVE")
        checks.append(Check("project", state == "ACTIVE", f"{config.project} ({state}, number {project.get('projectNumber')})",
                            "" if state == "ACTIVE" else "restore the project or pick another EDUGRAPH_GCP_PROJECT"))
        number = project.get("projectNumber")
    except HttpError as error:
        checks.append(Check("project", False, f"{config.project}: {_error_text(error)}",
                            "check EDUGRAPH_GCP_PROJECT and that your credentials can read it"))
        return checks
    account = config.service_account or (f"{number}-compute@developer.gserviceaccount.com" if number else None)

    storage = _service("storage", "v1", config.endpoint)
    bucket_policy: dict = {}
    try:
        bucket = storage.buckets().get(bucket=config.bucket).execute()
        checks.append(Check("bucket", True, f"gs://{config.bucket} ({bucket.get('location', '?')})"))
        bucket_policy = storage.buckets().getIamPolicy(bucket=config.bucket).execute()
    except HttpError as error:
        checks.append(Check("bucket", False, f"gs://{config.bucket}: {_error_text(error)}",
                            f"gcloud storage buckets create gs://{config.bucket} --location=<region of the zones>"))

    match = _REGISTRY.match(config.image)
    if not match:
        checks.append(Check("image", False, f"{config.image} is not an Artifact Registry path",
                            "push the trainer image to LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG "
                            "and set EDUGRAPH_TRAINING_IMAGE"))
    else:
        registry = _service("artifactregistry", "v1", config.endpoint)
        tag = match["tag"] or "latest"
        name = (f"projects/{match['project']}/locations/{match['location']}/repositories/{match['repo']}/packages/"
                f"{quote(match['image'], safe='')}/tags/{tag}")
        try:
            found = registry.projects().locations().repositories().packages().tags().get(name=name).execute()
            checks.append(Check("image", True, f"{config.image} ({found.get('version', '').rsplit('/', 1)[-1]})"))
        except HttpError as error:
            checks.append(Check("image", False, f"{config.image}: {_error_text(error)}",
                                "docker push it (docs/training-launchers.md, Building and pushing the images)"))

    try:
        accelerators.compute_name(config.accelerator)
    except ValueError as error:  # no machine with it will be created: its zones and quota do not matter
        checks.append(Check("gpu", False, str(error), "set EDUGRAPH_GCP_ACCELERATOR to a GPU with bf16"))
        config = dataclasses.replace(config, zones=[])
    compute = _service("compute", "v1", config.endpoint)
    metric = _quota_metric(config.accelerator, config.spot)
    regions: dict[str, dict] = {}
    for zone in config.zones:
        region = zone.rsplit("-", 1)[0]
        try:
            compute.acceleratorTypes().get(project=config.project, zone=zone, acceleratorType=config.accelerator).execute()
            if region not in regions:
                regions[region] = compute.regions().get(project=config.project, region=region).execute()
        except HttpError as error:
            checks.append(Check(f"gpu {zone}", False, f"{config.accelerator} in {zone}: {_error_text(error)}",
                                "pick zones that offer the accelerator (gcloud compute accelerator-types list)"))
            continue
        quota = next((q for q in regions[region].get("quotas", []) if q.get("metric") == metric), None)
        if quota is None:
            checks.append(Check(f"gpu {zone}", False, f"no {metric} quota in {region}",
                                f"request {metric} quota in {region} (IAM & Admin > Quotas)"))
            continue
        free = float(quota.get("limit", 0)) - float(quota.get("usage", 0))
        ok = free >= config.accelerator_count
        checks.append(Check(f"gpu {zone}", ok, f"{metric} in {region}: {free:g} free of {float(quota.get('limit', 0)):g}",
                            "" if ok else f"request more {metric} quota in {region}"))

    if account is None:
        checks.append(Check("service account", False, "unknown (no EDUGRAPH_GCP_SERVICE_ACCOUNT, no project number)",
                            "set EDUGRAPH_GCP_SERVICE_ACCOUNT"))
        return checks
    member = f"serviceAccount:{account}"
    try:
        project_policy = crm.projects().getIamPolicy(resource=config.project, body={}).execute()
    except HttpError as error:
        checks.append(Check("service account roles", False, f"project IAM policy unreadable: {_error_text(error)}",
                            "run the check as someone who may read the project's IAM policy"))
        return checks
    on_bucket = member in _members(bucket_policy, BUCKET_ROLES) or member in _members(project_policy, BUCKET_ROLES)
    checks.append(Check(f"{account}: storage object admin on gs://{config.bucket}", on_bucket, "object read/write/list",
                        "" if on_bucket else f"gcloud storage buckets add-iam-policy-binding gs://{config.bucket} "
                        f"--member={member} --role=roles/storage.objectAdmin"))
    for what, roles in PROJECT_ROLES.items():
        ok = member in _members(project_policy, roles)
        checks.append(Check(f"{account}: {what}", ok, " or ".join(roles),
                            "" if ok else f"gcloud projects add-iam-policy-binding {config.project} --member={member} "
                            f"--role={roles[0]}"))
    if config.hf_token_secret:
        ok = member in _members(project_policy, SECRET_ROLES)
        checks.append(Check(f"{account}: secret accessor", ok, config.hf_token_secret,
                            "" if ok else f"gcloud secrets add-iam-policy-binding {config.hf_token_secret.split('/')[3]} "
                            f"--member={member} --role=roles/secretmanager.secretAccessor"))
    return checks


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{'ok     ' if check.ok else 'MISSING'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"        fix: {check.fix}")
    missing = sum(not c.ok for c in checks)
    lines.append("everything the gcp and vertex launchers need is there" if not missing else f"{missing} missing")
    return "\n".join(lines)


def main() -> int:
    checks = run_checks(PreflightConfig.from_settings())
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1
