"""A small fake of the Hugging Face Hub HTTP API on 127.0.0.1, for upload tests (no network).

It speaks the part of the API that ``huggingface_hub`` 2.4 uses for ``collection.publish.upload``
over the classic (non-Xet) LFS path; tests must disable Xet (``constants.HF_HUB_DISABLE_XET``).

Covered:

- ``POST /api/repos/create`` (409 when the repo exists), ``GET /api/datasets/{repo}/revision/{rev}``
  (``repo_info``), ``POST /api/datasets/{repo}/branch/{branch}`` (409 when it exists);
- ``GET /api/datasets/{repo}/tree/{rev}`` with ``recursive`` (one page, no pagination),
  ``POST /api/datasets/{repo}/paths-info/{rev}``;
- ``POST /api/validate-yaml`` (YAML must parse), ``POST /api/datasets/{repo}/preupload/{rev}``
  (``*.parquet`` and files over 1 MB are LFS, the rest regular);
- the LFS batch API ``POST /datasets/{repo}.git/info/lfs/objects/batch`` with basic single-part
  ``PUT`` uploads (content checked against its sha256) and the verify callback;
- ``POST /api/datasets/{repo}/commit/{rev}`` (NDJSON: ``file``, ``lfsFile``, ``deletedFile``,
  ``deletedFolder``), and ``GET /datasets/{repo}/resolve/{rev}/{path}``;
- auth: ``Authorization: Bearer <token>``; an unknown or missing token gets 401, a known token
  without write access to the namespace gets 403 on writes;
- fault injection: :attr:`FakeHub.fail_commit_at` answers 500 to the N-th commit request, once.

Not covered: Xet storage, multipart LFS, pull requests, pagination, gated/private read access,
rate limits, commit history / ``parent_commit`` checks, and anything model or Space specific.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

LFS_THRESHOLD = 1_000_000


def git_sha1(data: bytes) -> str:
    """The git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One dataset repo: branch -> {path: (bytes, is_lfs)}, and the commit log."""

    private: bool
    branches: dict[str, dict[str, tuple[bytes, bool]]] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)


class FakeHub:
    """State of the fake Hub plus the server thread; use as a context manager."""

    def __init__(self, tokens: dict[str, set[str]] | None = None):
        self.tokens = tokens if tokens is not None else {"hf_write": {"*"}}
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.fail_commit_at: int | None = None
        self.commit_requests = 0
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to pass as ``HF_ENDPOINT`` / ``endpoint=``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        """Path -> content of a branch."""
        return {p: data for p, (data, _) in self.repos[repo_id].branches[branch].items()}


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        # ------------------------------------------------------------------ plumbing
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload: Any = None, raw: bytes | None = None,
                  error_code: str | None = None) -> None:
            data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_code:
                self.send_header("X-Error-Code", error_code)
            if status >= 400 and isinstance(payload, dict) and "error" in payload:
                self.send_header("X-Error-Message", str(payload["error"]))
            self.end_headers()
            self.wfile.write(data)

        def _token_ok(self, namespace: str | None, write: bool) -> bool:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token not in hub.tokens:
                self._send(401, {"error": "Invalid credentials in Authorization header"})
                return False
            scopes = hub.tokens[token]
            if write and "*" not in scopes and namespace not in scopes:
                self._send(403, {"error": f"You don't have the rights to write to {namespace}"})
                return False
            return True

        def _repo(self, repo_id: str, rev: str | None = None) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._send(404, {"error": "Repository not found"}, error_code="RepoNotFound")
                return None
            if rev is not None and rev not in repo.branches:
                self._send(404, {"error": "Invalid rev id"}, error_code="RevisionNotFound")
                return None
            return repo

        # ------------------------------------------------------------------ routes
        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            path = url.path
            hub.requests.append((method, path))
            body = self._body() if method in ("POST", "PUT") else b""
            repo = r"(?P<repo>[^/]+/[^/]+?)"
            routes = [
                ("POST", r"/api/repos/create", self._create),
                ("GET", rf"/api/datasets/{repo}/revision/(?P<rev>[^/]+)", self._info),
                ("POST", rf"/api/datasets/{repo}/branch/(?P<rev>[^/]+)", self._branch),
                ("GET", rf"/api/datasets/{repo}/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", self._tree),
                ("POST", rf"/api/datasets/{repo}/paths-info/(?P<rev>[^/]+)", self._paths_info),
                ("POST", r"/api/validate-yaml", self._validate_yaml),
                ("POST", rf"/api/datasets/{repo}/preupload/(?P<rev>[^/]+)", self._preupload),
                ("POST", rf"/datasets/{repo}\.git/info/lfs/objects/batch", self._lfs_batch),
                ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self._lfs_put),
                ("POST", r"/lfs-verify", self._lfs_verify),
                ("POST", rf"/api/datasets/{repo}/commit/(?P<rev>[^/]+)", self._commit),
                ("GET", rf"/datasets/{repo}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
            ]
            for verb, pattern, handler in routes:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    args = {k: unquote(v) if isinstance(v, str) else v for k, v in match.groupdict().items()}
                    with hub.lock:
                        handler(body=body, query=parse_qs(url.query), **args)
                    return
            self._send(404, {"error": f"fake hub: no route for {method} {path}"})

        def _create(self, body: bytes, query: dict) -> None:
            payload = json.loads(body)
            repo_id = f"{payload.get('organization')}/{payload['name']}"
            if not self._token_ok(payload.get("organization"), write=True):
                return
            if repo_id in hub.repos:
                self._send(409, {"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo_id}"})
                return
            gitattributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
            hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private",
                                      branches={"main": {".gitattributes": (gitattributes, False)}})
            self._send(200, {"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id})

        def _info(self, body: bytes, query: dict, repo: str, rev: str) -> None:
            if not self._token_ok(None, write=False) or (found := self._repo(repo, rev)) is None:
                return
            files = found.branches[rev]
            self._send(200, {"id": repo, "sha": hashlib.sha1(repr(sorted(files)).encode()).hexdigest(),
                             "private": found.private, "siblings": [{"rfilename": p} for p in sorted(files)]})

        def _branch(self, body: bytes, query: dict, repo: str, rev: str) -> None:
            if not self._token_ok(repo.split("/")[0], write=True) or (found := self._repo(repo)) is None:
                return
            if rev in found.branches:
                self._send(409, {"error": "Reference already exists"})
                return
            found.branches[rev] = dict(found.branches["main"])
            self._send(200, {})

        def _entry(self, path: str, data: bytes, is_lfs: bool) -> dict[str, Any]:
            entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
            if is_lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            return entry

        def _tree(self, body: bytes, query: dict, repo: str, rev: str, sub: str | None) -> None:
            if not self._token_ok(None, write=False) or (found := self._repo(repo, rev)) is None:
                return
            prefix = (sub or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            entries, folders = [], set()
            for path, (data, is_lfs) in sorted(found.branches[rev].items()):
                if prefix and not path.startswith(prefix + "/"):
                    continue
                rest = path[len(prefix) + 1:] if prefix else path
                parts = rest.split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(([prefix] if prefix else []) + parts[:depth])
                    if (recursive or depth == 1) and folder not in folders:
                        folders.add(folder)
                        entries.append({"type": "directory", "path": folder, "oid": git_sha1(folder.encode())})
                if recursive or len(parts) == 1:
                    entries.append(self._entry(path, data, is_lfs))
            self._send(200, entries)

        def _paths_info(self, body: bytes, query: dict, repo: str, rev: str) -> None:
            if not self._token_ok(None, write=False) or (found := self._repo(repo, rev)) is None:
                return
            wanted = parse_qs(body.decode()).get("paths", [])
            files = found.branches[rev]
            self._send(200, [self._entry(p, *files[p]) for p in wanted if p in files])

        def _validate_yaml(self, body: bytes, query: dict) -> None:
            import yaml

            content = json.loads(body)["content"]
            match = re.match(r"^---\n(.*?)\n---", content, re.DOTALL)
            try:
                yaml.safe_load(match.group(1) if match else "")
            except yaml.YAMLError as exc:
                self._send(400, {"errors": [{"message": str(exc)}], "error": "invalid YAML"})
                return
            self._send(200, {"errors": [], "warnings": []})

        def _preupload(self, body: bytes, query: dict, repo: str, rev: str) -> None:
            if not self._token_ok(repo.split("/")[0], write=True) or (found := self._repo(repo, rev)) is None:
                return
            out = []
            for item in json.loads(body)["files"]:
                lfs = item["path"].endswith(".parquet") or item["size"] >= LFS_THRESHOLD
                current = found.branches[rev].get(item["path"])
                oid = None
                if current is not None:
                    oid = hashlib.sha256(current[0]).hexdigest() if current[1] else git_sha1(current[0])
                out.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": oid})
            self._send(200, {"files": out, "commitOid": "0" * 40})

        def _lfs_batch(self, body: bytes, query: dict, repo: str) -> None:
            if not self._token_ok(repo.split("/")[0], write=True) or self._repo(repo) is None:
                return
            objects = []
            for obj in json.loads(body)["objects"]:
                item = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    item["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"},
                                       "verify": {"href": f"{hub.url}/lfs-verify"}}
                objects.append(item)
            self._send(200, {"transfer": "basic", "objects": objects})

        def _lfs_put(self, body: bytes, query: dict, oid: str) -> None:
            if hashlib.sha256(body).hexdigest() != oid:
                self._send(400, {"error": "content does not match its oid"})
                return
            hub.lfs[oid] = body
            self._send(200, {})

        def _lfs_verify(self, body: bytes, query: dict) -> None:
            obj = json.loads(body)
            ok = obj["oid"] in hub.lfs and len(hub.lfs[obj["oid"]]) == obj["size"]
            self._send(200 if ok else 404, {} if ok else {"error": "object not uploaded"})

        def _commit(self, body: bytes, query: dict, repo: str, rev: str) -> None:
            if not self._token_ok(repo.split("/")[0], write=True) or (found := self._repo(repo, rev)) is None:
                return
            hub.commit_requests += 1
            if hub.fail_commit_at is not None and hub.commit_requests == hub.fail_commit_at:
                hub.fail_commit_at = None
                self._send(500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"})
                return
            files = dict(found.branches[rev])
            header, changed = {}, []
            for line in body.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    files[value["path"]] = (base64.b64decode(value["content"]), False)
                    changed.append(value["path"])
                elif key == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        self._send(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                        return
                    files[value["path"]] = (hub.lfs[value["oid"]], True)
                    changed.append(value["path"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                    changed.append(value["path"])
                elif key == "deletedFolder":
                    for path in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                        files.pop(path)
                        changed.append(path)
            found.branches[rev] = files
            oid = hashlib.sha1(f"{repo}{rev}{len(found.commits)}".encode()).hexdigest()
            found.commits.append({"branch": rev, "summary": header.get("summary"), "paths": changed, "oid": oid})
            self._send(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid,
                             "success": True, "pullRequestUrl": None})

        def _resolve(self, body: bytes, query: dict, repo: str, rev: str, file: str) -> None:
            if (found := self._repo(repo, rev)) is None:
                return
            entry = found.branches[rev].get(file)
            if entry is None:
                self._send(404, {"error": "Entry not found"}, error_code="EntryNotFound")
                return
            self._send(200, raw=entry[0])

    return Handler
