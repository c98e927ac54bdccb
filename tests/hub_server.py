"""A Hugging Face hub on 127.0.0.1 for the tests: just the endpoints huggingface_hub, transformers and datasets
use to list branches, read repository info and trees, and download files.

Why not an existing server: olah (the one hub-compatible server on PyPI) is a caching mirror of the real hub
with FastAPI, uvicorn and git dependencies; serving a few folders needs none of that.

Repositories are folders: `Repo(kind, id, branches={branch: folder})`. Every file below a branch's folder is
served at that branch, with a commit hash derived from the branch's content. `gated` and
`private` repositories answer 401 as the hub does to an anonymous user. `checkpoint_copy` makes the folders of
revisions whose weights are not `model.safetensors`: `pytorch_model.bin` only, or none at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Repo:
    kind: str  # model or dataset
    id: str  # org/name
    branches: dict[str, Path] = field(default_factory=dict)
    gated: bool = False
    private: bool = False

    def files(self, branch: str) -> dict[str, Path]:
        root = self.branches[branch]
        return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}

    def commit(self, branch: str) -> str:
        digest = hashlib.sha1(f"{self.id}@{branch}".encode())
        for name, path in self.files(branch).items():
            digest.update(name.encode() + path.read_bytes())
        return digest.hexdigest()

    def branch_of(self, revision: str) -> str | None:
        if revision in self.branches:
            return revision
        return next((b for b in self.branches if self.commit(b) == revision), None)


class HubServer:
    """`with HubServer(repos) as hub:` serves `repos` at `hub.url` (127.0.0.1, a free port) until the block ends."""

    def __init__(self, repos: list[Repo]) -> None:
        self.repos = {(r.kind, r.id): r for r in repos}
        self.requests: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet; requests are recorded instead
            pass

        def do_HEAD(self) -> None:
            self.route(body=False)

        def do_GET(self) -> None:
            self.route(body=True)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.form = parse_qs(self.rfile.read(length).decode()) if length else {}
            self.route(body=True)

        def route(self, body: bool) -> None:
            url = urlparse(self.path)
            hub.requests.append(f"{self.command} {url.path}")
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if parts[0] == "api" and parts[1] in ("models", "datasets"):
                return self.api(parts[1][:-1], parts[2:], parse_qs(url.query), body)
            kind = "dataset" if parts[0] == "datasets" else "model"
            parts = parts[1:] if kind == "dataset" else parts
            if len(parts) >= 5 and parts[2] == "resolve":
                return self.resolve(kind, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
            self.error(404, "EntryNotFound", "not found")

        def repo(self, kind: str, repo_id: str) -> Repo | None:
            repo = hub.repos.get((kind, repo_id))
            if repo is None:
                self.error(404, "RepoNotFound", f"Repository {repo_id} not found")
            elif repo.gated:
                self.error(401, "GatedRepo", f"Access to {repo_id} is restricted. You must be authenticated.")
            elif repo.private:
                self.error(401, "RepoNotFound", "Invalid username or password.")
            else:
                return repo
            return None

        def api(self, kind: str, parts: list[str], query: dict, body: bool) -> None:
            repo = self.repo(kind, "/".join(parts[:2]))
            if repo is None:
                return
            rest = parts[2:]
            if rest == ["refs"]:
                branches = [
                    {"name": b, "ref": f"refs/heads/{b}", "targetCommit": repo.commit(b)} for b in repo.branches
                ]
                return self.json({"branches": branches, "tags": [], "converts": []}, body)
            revision = rest[1] if len(rest) >= 2 and rest[0] in ("revision", "tree", "paths-info") else "main"
            branch = repo.branch_of(revision)
            if branch is None:
                return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            files = repo.files(branch)
            if not rest or rest[0] == "revision":
                return self.json(
                    {
                        "id": repo.id,
                        "sha": repo.commit(branch),
                        "private": False,
                        "gated": False,
                        "disabled": False,
                        "siblings": [{"rfilename": n} for n in files],
                        "tags": [],
                        "downloads": 0,
                        "likes": 0,
                    },
                    body,
                )
            if rest[0] == "tree":
                prefix = "/".join(rest[2:]).strip("/")
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self.json(tree(files, prefix, recursive), body)
            if rest[0] == "paths-info":
                wanted = getattr(self, "form", {}).get("paths", [])
                return self.json([entry for entry in tree(files, "", True) if entry["path"] in wanted], body)
            self.error(404, "EntryNotFound", "unknown endpoint")

        def resolve(self, kind: str, repo_id: str, revision: str, name: str, body: bool) -> None:
            repo = self.repo(kind, repo_id)
            if repo is None:
                return
            branch = repo.branch_of(revision)
            if branch is None:
                return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            path = repo.files(branch).get(name)
            if path is None:
                return self.error(404, "EntryNotFound", f"{name} does not exist at {revision}")
            data = path.read_bytes()
            start, end = 0, len(data)
            status = 200
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                start, end, status = int(first or 0), min(int(last) + 1 if last else len(data), len(data)), 206
            self.send_response(status)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", repo.commit(branch))
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start:end])

        def json(self, payload: object, body: bool) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def error(self, status: int, code: str, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def checkpoint_copy(source: Path, target: Path, weights: str | None) -> Path:
    """`source` (a saved model folder) copied to `target` with its weights as `pytorch_model.bin` (`weights="bin"`,
    as older hub revisions ship them) or without weights (None: a branch whose weights were never uploaded)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".safetensors":
            shutil.copy(path, target / path.name)
    if weights == "bin":
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(source / "model.safetensors"), target / "pytorch_model.bin")
    elif weights is not None:
        raise ValueError(f"weights must be 'bin' or None, not {weights!r}")
    return target


def tree(files: dict[str, Path], prefix: str, recursive: bool) -> list[dict]:
    """The hub's tree listing of `files` under `prefix`: files and folders, one level or all."""
    entries: dict[str, dict] = {}
    for name, path in files.items():
        if prefix and not name.startswith(prefix + "/"):
            continue
        rest = name[len(prefix) + 1 :] if prefix else name
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(([prefix] if prefix else []) + parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40})
        if recursive or len(parts) == 1:
            data = path.read_bytes()
            entries[name] = {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
    return list(entries.values())
