"""A local stand-in for the Hugging Face Hub's HTTP API, for tests.

`HubServer` is a threaded `http.server` on 127.0.0.1 (a free port) that speaks enough of the Hub's API for the real
`huggingface_hub` 2.4 client (with Xet disabled: ``HF_HUB_DISABLE_XET=1`` or `disable_xet(monkeypatch)`) to create
repositories, upload files (regular files inline in the NDJSON commit, large files through the classic LFS batch API
and a presigned-style PUT back to this server), list trees, read commit history and download files with
`hf_hub_download` / `snapshot_download`::

    with HubServer(token="hf_test") as hub:
        api = HfApi(endpoint=hub.endpoint, token="hf_test")
        api.create_repo("edugraph/labeller")
        ...
        assert hub.commit_count("edugraph/labeller") == 2

Tags (`HfApi.create_tag` / `delete_tag`, listed by `list_repo_refs`, resolvable as revisions) work for every
repository type, so a dataset repository can publish tagged content releases; `move_tag` re-points one.

Repositories live in memory: every commit is a full snapshot of the tree, so `head()` / `files()` / `history()`
can be asserted on directly. Writes need ``Authorization: Bearer <token>``; a wrong token is refused with 401.
Every request is recorded in `requests` (method, path, headers with the Authorization value redacted, body size,
status) and every place where the token shows up outside the Authorization header (URL, another header, the body)
is recorded in `token_leaks`, so tests can assert that a client never leaks it.

Fault injection: `fail(target, times=1, status=503)` makes the next `times` requests of one kind (`lfs_upload`,
`lfs_batch`, `lfs_verify`, `preupload`, `commit`, `create_repo`, `repo_info`, `tree`, `resolve`, `refs`) fail with that HTTP
status, or (``status="drop"``) drop the connection without answering; ``times=None`` fails until `clear_faults()`.
With ``after_apply=True`` a failing commit is applied first and only its answer is lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REDACTED = "<redacted>"
GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.arrow filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.gguf filter=lfs diff=lfs merge=lfs -text\n"
    "*.msgpack filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n"
    "*.tar filter=lfs diff=lfs merge=lfs -text\n"
    "*.npy filter=lfs diff=lfs merge=lfs -text\n"
    "*.png filter=lfs diff=lfs merge=lfs -text\n"
    "*.jpg filter=lfs diff=lfs merge=lfs -text\n"
)
LFS_PATTERNS = tuple(line.split()[0] for line in GITATTRIBUTES.splitlines())
REPO_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
FAULT_TARGETS = (
    "create_repo",
    "repo_info",
    "preupload",
    "validate_yaml",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "commit",
    "tree",
    "paths_info",
    "commits",
    "resolve",
    "refs",
)
_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Entry:
    """One file in a commit's tree: inline content (regular) or a reference to an LFS object."""

    data: bytes | None  # regular files
    lfs_oid: str | None  # LFS files (sha256 hex)
    size: int

    @property
    def blob_id(self) -> str:
        return git_blob_sha1(self.data if self.lfs_oid is None else lfs_pointer(self.lfs_oid, self.size))

    def tree_json(self, path: str) -> dict:
        item: dict = {"type": "file", "oid": self.blob_id, "size": self.size, "path": path}
        if self.lfs_oid is not None:
            item["lfs"] = {"oid": self.lfs_oid, "size": self.size, "pointerSize": len(lfs_pointer(self.lfs_oid, self.size))}
        return item


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # tag name -> commit oid (lightweight, movable by delete+create)

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if revision.startswith("refs/heads/") and revision[11:] in self.branches:
            return self.commits[self.branches[revision[11:]]]
        if revision in self.tags:
            return self.commits[self.tags[revision]]
        if revision.startswith("refs/tags/") and revision[10:] in self.tags:
            return self.commits[self.tags[revision[10:]]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            found = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(found) == 1:
                return found[0]
        return None

    def history(self, branch: str = "main") -> list[Commit]:
        """Commits reachable from `branch`, newest first."""
        out, oid = [], self.branches.get(branch)
        while oid is not None:
            out.append(self.commits[oid])
            oid = self.commits[oid].parent
        return out


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    target: str | None = None
    status: int | None = None  # None: the connection was dropped


@dataclass
class Fault:
    status: int | str
    remaining: int | None
    after_apply: bool


class _Drop(Exception):
    """Close the connection without an answer."""


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubServer:
    """The local Hub. Use as a context manager (or call `start()` / `stop()`)."""

    def __init__(
        self,
        token: str = "hf_local_test_token",
        *,
        user: str = "edugraph-test",
        lfs_threshold: int = 10 * 1024 * 1024,
        host: str = "127.0.0.1",
    ):
        self.token = token
        self.user = user
        self.lfs_threshold = lfs_threshold
        self.host = host
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.token_leaks: list[str] = []
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._clock = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    # ---------------------------------------------------------------------------------------------- test helpers
    def fail(self, target: str, *, times: int | None = 1, status: int | str = 503, after_apply: bool = False) -> None:
        """Make the next `times` requests of kind `target` fail (`status` an HTTP code or "drop")."""
        if target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {target!r}; one of {FAULT_TARGETS}")
        with self._lock:
            self._faults.setdefault(target, []).append(Fault(status, times, after_apply))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def head(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str | None:
        repo = self.repos.get((repo_type, repo_id))
        return repo.branches.get(branch) if repo else None

    def history(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        return self.repo(repo_id, repo_type).history()

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        return len(self.history(repo_id, repo_type))

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The content of every file at `revision` (LFS files resolved)."""
        repo = self.repo(repo_id, repo_type)
        commit = repo.resolve(revision)
        assert commit is not None
        return {p: (e.data if e.lfs_oid is None else repo.lfs[e.lfs_oid]) for p, e in commit.files.items()}

    def move_tag(self, repo_id: str, tag: str, revision: str = "main", repo_type: str = "model") -> str:
        """Point `tag` at `revision` (created or moved, as a force-push of a tag would); returns the commit."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            commit = repo.resolve(revision)
            assert commit is not None, f"no revision {revision} in {repo_id}"
            repo.tags[tag] = commit.oid
            return commit.oid

    def requests_for(self, target: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.target == target]

    # ---------------------------------------------------------------------------------------------- internals
    def _now(self) -> str:
        # A monotonic fake clock: deterministic, strictly increasing commit dates.
        return (_EPOCH + timedelta(seconds=next(self._clock))).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(target)
            if not queue:
                return None
            fault = queue[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.pop(0)
            return fault

    def _sign(self, repo: Repo, oid: str) -> str:
        msg = f"{repo.repo_type}/{repo.repo_id}/{oid}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _is_lfs(self, path: str, size: int) -> bool:
        name = path.rsplit("/", 1)[-1]
        return size >= self.lfs_threshold or any(fnmatch(name, pattern) for pattern in LFS_PATTERNS)

    def _create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=self._now())
        data = GITATTRIBUTES.encode()
        self._add_commit(repo, "main", "initial commit", "", {".gitattributes": Entry(data, None, len(data))})
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def _add_commit(self, repo: Repo, branch: str, title: str, message: str, files: dict[str, Entry]) -> Commit:
        parent = repo.branches.get(branch)
        date = self._now()
        digest = hashlib.sha1()
        digest.update(f"{parent}\n{title}\n{message}\n{date}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].blob_id}\n".encode())
        commit = Commit(digest.hexdigest(), parent, title, message, date, dict(files))
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit


def _tree_items(files: dict[str, Entry], base: str, recursive: bool) -> list[dict]:
    base = base.strip("/")
    prefix = base + "/" if base else ""
    items: dict[str, dict] = {}
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            folder = prefix + "/".join(parts[:depth])
            if folder not in items:
                oid = hashlib.sha1(("tree:" + folder + "".join(f"{p}{e.blob_id}" for p, e in sorted(files.items())
                                                                  if p.startswith(folder + "/"))).encode())
                items[folder] = {"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": folder}
        if recursive or len(parts) == 1:
            items[path] = files[path].tree_json(path)
    return list(items.values())


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr logging
        pass

    # ------------------------------------------------------------------------------------------------- plumbing
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        hub = self.hub
        body = self._read_body() if self.command in ("POST", "PUT", "DELETE") else b""
        headers = {k: (REDACTED if k.lower() == "authorization" else v) for k, v in self.headers.items()}
        record = RecordedRequest(self.command, self.path, headers, len(body))
        with hub._lock:
            hub.requests.append(record)
            token = hub.token.encode()
            if token in self.path.encode() or token in body or any(
                hub.token in v for k, v in self.headers.items() if k.lower() != "authorization"
            ):
                hub.token_leaks.append(f"{self.command} {self.path}")
        self._body, self._record = body, record
        try:
            self._route()
        except _Drop:
            record.status = None
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except _HttpError as err:
            self._send_json(err.status, {"error": err.message}, code=err.code, extra=err.headers)
        except Exception as err:  # pragma: no cover - a bug in the stand-in: answer 500 so the test sees it
            self._send_json(500, {"error": f"local hub error: {type(err).__name__}: {err}"})

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        self._record.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload, code: str | None = None, extra: dict | None = None):
        headers = dict(extra or {})
        if code:
            headers["X-Error-Code"] = code
        if status >= 400 and isinstance(payload, dict) and "error" in payload:
            headers["X-Error-Message"] = str(payload["error"]).splitlines()[0][:200]
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _fault(self, target: str, *, before: bool = True) -> Fault | None:
        """Apply an injected fault for `target` (before the work, unless it is an after-apply fault)."""
        self._record.target = target
        fault = self.hub._take_fault(target)
        if fault is None:
            return None
        if fault.after_apply and before:
            return fault  # the caller applies the change, then calls `_raise_fault`
        self._raise_fault(fault)
        return None

    @staticmethod
    def _raise_fault(fault: Fault):
        if fault.status == "drop":
            raise _Drop()
        raise _HttpError(int(fault.status), f"injected fault (HTTP {fault.status})")

    # ------------------------------------------------------------------------------------------------------ auth
    def _auth(self, required: bool) -> bool:
        value = self.headers.get("Authorization")
        if value is None:
            if required:
                raise _HttpError(401, "Invalid username or password.")
            return False
        if not hmac.compare_digest(value.encode(), f"Bearer {self.hub.token}".encode()):
            raise _HttpError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        authed = self._auth(required=write)
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authed):
            raise _HttpError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise _HttpError(404, f"Invalid rev id: {unquote(revision)}", code="RevisionNotFound")
        return commit

    # ---------------------------------------------------------------------------------------------------- routes
    def _route(self):
        url = urlsplit(self.path)
        self._query = parse_qs(url.query)
        path = url.path
        method = self.command
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo()
        if method == "GET" and path == "/api/agent-harnesses":  # huggingface_hub's agent registry: none
            return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "GET" and path == "/api/whoami-v2":
            self._auth(required=True)
            return self._send_json(200, {"type": "user", "name": self.hub.user, "orgs": [], "auth": {}})
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml()
        if method == "PUT" and path.startswith("/_lfs/"):
            return self._lfs_upload(path)
        m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
        if m:
            repo_type, repo_id, rest = API_TYPES[m.group(1)], m.group(2), m.group(3) or ""
            return self._api(method, repo_type, repo_id, rest)
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+?)\.git/info/lfs/objects/(batch|verify)", path)
        if m:
            repo_type = API_TYPES[m.group(1)] if m.group(1) else "model"
            return self._lfs_batch(repo_type, m.group(2)) if m.group(3) == "batch" else self._lfs_verify(repo_type, m.group(2))
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            repo_type = API_TYPES[m.group(1)] if m.group(1) else "model"
            return self._resolve(repo_type, m.group(2), m.group(3), unquote(m.group(4)))
        raise _HttpError(404, f"local hub: no route for {method} {path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str):
        if method == "GET" and (rest == "" or rest.startswith("revision/")):
            return self._repo_info(repo_type, repo_id, rest[len("revision/") :] if rest else "main")
        head, _, revision = rest.partition("/")
        if method == "POST" and head == "preupload":
            return self._preupload(repo_type, repo_id, revision)
        if method == "POST" and head == "commit":
            return self._commit_endpoint(repo_type, repo_id, revision)
        if method == "GET" and head == "tree":
            revision, _, sub = revision.partition("/")
            return self._tree(repo_type, repo_id, revision, unquote(sub))
        if method == "POST" and head == "paths-info":
            return self._paths_info(repo_type, repo_id, revision)
        if method == "GET" and head == "commits":
            return self._commits(repo_type, repo_id, revision)
        if method == "GET" and head == "refs":
            self._fault("refs")
            with self.hub._lock:
                repo = self._repo(repo_type, repo_id)
                branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in repo.branches.items()]
                tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": oid} for t, oid in repo.tags.items()]
            return self._send_json(200, {"branches": branches, "converts": [], "tags": tags})
        if method in ("POST", "DELETE") and head == "tag":
            return self._tag(method, repo_type, repo_id, unquote(revision))
        raise _HttpError(404, f"local hub: no API route for {method} {rest}")

    def _tag(self, method: str, repo_type: str, repo_id: str, name: str):
        """POST .../tag/<revision> {"tag": name} creates a tag (409 if it exists); DELETE .../tag/<name> removes it."""
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            if method == "DELETE":
                if repo.tags.pop(name, None) is None:
                    raise _HttpError(404, f"Tag {name} not found", code="RevisionNotFound")
                return self._send_json(200, {})
            tag = json.loads(self._body or b"{}").get("tag", "")
            if not tag:
                raise _HttpError(400, "field 'tag' is required")
            if tag in repo.tags:
                raise _HttpError(409, f"Tag {tag} already exists")
            repo.tags[tag] = self._commit(repo, name).oid
        self._send_json(200, {})

    def _create_repo(self):
        self._fault("create_repo")
        self._auth(required=True)
        payload = json.loads(self._body or b"{}")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_PREFIXES:
            raise _HttpError(400, f"invalid repo type {repo_type!r}")
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.endpoint}/{REPO_PREFIXES[repo_type]}{repo_id}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub.repos:
                # Like the Hub, the 409 answer still names the repo's url (create_repo(exist_ok=True) reads it).
                return self._send_json(409, {"error": f"You already created this {repo_type} repo", "url": url})
            self.hub._create_repo(repo_type, repo_id, private)
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str):
        self._fault("repo_info")
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, revision)
            blobs = self._query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sibling: dict = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry.size, blobId=entry.blob_id)
                    if entry.lfs_oid is not None:
                        sibling["lfs"] = {"size": entry.size, "sha256": entry.lfs_oid,
                                          "pointerSize": len(lfs_pointer(entry.lfs_oid, entry.size))}
                siblings.append(sibling)
            info = {
                "_id": hashlib.md5(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        self._send_json(200, info)

    def _validate_yaml(self):
        self._fault("validate_yaml")
        import yaml

        content = json.loads(self._body or b"{}").get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.S)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return self._send_json(400, {"error": "invalid yaml", "errors": [{"message": str(err)}]})
            if meta is not None and not isinstance(meta, dict):
                return self._send_json(400, {"error": "invalid yaml", "errors": [{"message": "not a mapping"}]})
        self._send_json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo_type: str, repo_id: str, revision: str):
        self._fault("preupload")
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit(repo, revision)
            out = []
            for item in json.loads(self._body)["files"]:
                path, size = item["path"], int(item["size"])
                mode = "lfs" if self.hub._is_lfs(path, size) else "regular"
                remote = commit.files.get(path)
                oid = None
                if remote is not None:
                    oid = remote.lfs_oid if remote.lfs_oid is not None else git_blob_sha1(remote.data)
                out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json(200, {"files": out, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str):
        self._fault("lfs_batch")
        payload = json.loads(self._body)
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            objects = []
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], int(obj["size"])
                item: dict = {"oid": oid, "size": size, "authenticated": True}
                if payload.get("operation") != "upload":
                    item["error"] = {"code": 422, "message": "only uploads are supported"}
                elif oid not in repo.lfs:
                    href = f"{self.hub.endpoint}/_lfs/{repo_type}/{repo_id}/{oid}?size={size}&sig={self.hub._sign(repo, oid)}"
                    prefix = REPO_PREFIXES[repo_type]
                    item["actions"] = {
                        "upload": {"href": href, "expires_in": 3600},
                        "verify": {"href": f"{self.hub.endpoint}/{prefix}{repo_id}.git/info/lfs/objects/verify"},
                    }
                objects.append(item)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_upload(self, path: str):
        self._fault("lfs_upload")
        m = re.fullmatch(r"/_lfs/(model|dataset|space)/([^/]+/[^/]+)/([0-9a-f]{64})", path)
        if not m:
            raise _HttpError(404, "unknown upload url")
        repo_type, repo_id, oid = m.groups()
        with self.hub._lock:
            repo = self.hub.repos.get((repo_type, repo_id))
            if repo is None:
                raise _HttpError(404, "no such repo", code="RepoNotFound")
            # Presigned-style: the signature in the URL is the authorisation, as for an S3 upload URL.
            if not hmac.compare_digest(self._query.get("sig", [""])[0], self.hub._sign(repo, oid)):
                raise _HttpError(403, "SignatureDoesNotMatch")
        body = self._body
        if hashlib.sha256(body).hexdigest() != oid or str(len(body)) != self._query.get("size", [""])[0]:
            raise _HttpError(400, "content does not match the announced sha256/size")
        with self.hub._lock:
            repo.lfs[oid] = body
        self._send(200, b"", headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def _lfs_verify(self, repo_type: str, repo_id: str):
        self._fault("lfs_verify")
        payload = json.loads(self._body)
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            data = repo.lfs.get(payload["oid"])
        if data is None or len(data) != int(payload["size"]):
            raise _HttpError(404, f"LFS object {payload['oid']} not found")
        self._send_json(200, {"oid": payload["oid"], "size": len(data)})

    def _commit_endpoint(self, repo_type: str, repo_id: str, revision: str):
        fault = self._fault("commit")
        if self._query.get("create_pr", ["0"])[0] not in ("0", ""):
            raise _HttpError(400, "local hub: pull requests are not supported")
        lines = [json.loads(line) for line in self._body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HttpError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        branch = unquote(revision)
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id, write=True)
            if branch not in repo.branches:
                raise _HttpError(404, f"Invalid rev id: {branch} (commits go to a branch)", code="RevisionNotFound")
            head = repo.branches[branch]
            parent = header.get("parentCommit")
            if parent is not None and not head.startswith(parent):
                raise _HttpError(412, f"A commit has happened since: {branch} is at {head}, not {parent}. "
                                      "Please refresh and try again.")
            files = dict(repo.commits[head].files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise _HttpError(400, "only base64 encoding is supported")
                    data = base64.b64decode(value["content"])
                    files[path] = Entry(data, None, len(data))
                elif key == "lfsFile":
                    oid = value["oid"]
                    if oid not in repo.lfs:
                        raise _HttpError(422, f"LFS object {oid} for {path} was not uploaded")
                    files[path] = Entry(None, oid, len(repo.lfs[oid]))
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise _HttpError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    for name in [p for p in files if p.startswith(folder)]:
                        del files[name]
                else:
                    raise _HttpError(400, f"local hub: unsupported commit operation {key!r}")
            commit = self.hub._add_commit(repo, branch, header.get("summary", ""), header.get("description", ""), files)
        if fault is not None:
            self._raise_fault(fault)  # applied, but the answer is lost
        prefix = REPO_PREFIXES[repo_type]
        self._send_json(200, {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{self.hub.endpoint}/{prefix}{repo_id}/commit/{commit.oid}",
            "pullRequestUrl": None,
        })

    def _tree(self, repo_type: str, repo_id: str, revision: str, sub: str):
        self._fault("tree")
        recursive = self._query.get("recursive", ["false"])[0].lower() == "true"
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, revision)
            if sub and sub not in commit.files and not any(p.startswith(sub.rstrip("/") + "/") for p in commit.files):
                raise _HttpError(404, f"{sub} does not exist on {revision}", code="EntryNotFound")
            items = _tree_items(commit.files, sub, recursive)
        self._send_json(200, items)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str):
        self._fault("paths_info")
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = json.loads(self._body)
            paths = payload.get("paths", [])
        else:
            paths = parse_qs(self._body.decode()).get("paths", [])
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, revision)
            out = []
            for path in paths:
                if path in commit.files:
                    out.append(commit.files[path].tree_json(path))
                elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                    out.extend(i for i in _tree_items(commit.files, "", True) if i["path"] == path.rstrip("/"))
        self._send_json(200, out)

    def _commits(self, repo_type: str, repo_id: str, revision: str):
        self._fault("commits")
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, revision)
            out = []
            oid = commit.oid
            while oid is not None:
                c = repo.commits[oid]
                out.append({"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                            "authors": [{"user": self.hub.user}]})
                oid = c.parent
        self._send_json(200, out)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str):
        self._fault("resolve")
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, revision)
            entry = commit.files.get(path)
            if entry is None:
                raise _HttpError(404, f"Entry not found: {path}", code="EntryNotFound",
                                 headers={"X-Repo-Commit": commit.oid})
            data = entry.data if entry.lfs_oid is None else repo.lfs[entry.lfs_oid]
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry.lfs_oid is not None:
            headers.update({"ETag": f'"{entry.lfs_oid}"', "X-Linked-Etag": f'"{entry.lfs_oid}"',
                            "X-Linked-Size": str(entry.size)})
        else:
            headers["ETag"] = f'"{entry.blob_id}"'
        status = 200
        wanted = self.headers.get("Range")
        if wanted:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise _HttpError(416, "unsupported range", headers={"Content-Range": f"bytes */{len(data)}"})
            if m.group(1) == "":
                start, end = max(len(data) - int(m.group(2)), 0), len(data) - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            if start >= len(data) and len(data) > 0:
                raise _HttpError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, content_type="application/octet-stream", headers=headers)


class _FastTime:
    """Stands in for the `time` module inside huggingface_hub's HTTP helpers: no real sleeping between retries."""

    def __init__(self, real):
        self._real = real
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name):
        return getattr(self._real, name)


def fast_hf_retries(monkeypatch) -> _FastTime:
    """Make huggingface_hub's own `http_backoff` retries instantaneous (its waits are 1, 2, 4, 8, 8 s)."""
    import time

    import huggingface_hub.utils._http as hf_http

    fake = _FastTime(time)
    monkeypatch.setattr(hf_http, "time", fake)
    return fake


def no_phone_home(monkeypatch) -> None:
    """Stop huggingface_hub 2.4 from fetching its agent registry from ``constants.ENDPOINT`` (huggingface.co unless
    HF_ENDPOINT was set before import) on the first request it builds headers for."""
    import huggingface_hub.utils._detect_agent as detect_agent

    monkeypatch.setattr(detect_agent, "_registry", {"standardEnvVars": [], "harnesses": {}})


def disable_xet(monkeypatch) -> None:
    """Use the classic LFS protocol (what this server speaks) even when `hf_xet` is installed."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
