"""A local stand-in for the part of the Hugging Face Hub that the fetcher's client talks to.

Only what huggingface_hub 2.x actually calls (read from its source: hf_api.py `model_info`,
file_download.py `get_hf_file_metadata` and `http_get`, utils/_http.py `hf_raise_for_status` and
`_httpx2_follow_hub_redirects_with_backoff`):
- GET  /api/models/<repo>/revision/<rev>?blobs=True: the commit sha and per-file size, blobId, lfs.sha256;
- HEAD /<repo>/resolve/<rev>/<file>: X-Repo-Commit, ETag; for LFS files a 302 to another host (the
  "CDN", here 127.0.0.2) with X-Linked-Size and X-Linked-Etag, which the client reads and does not follow;
- GET  of the same, with Range, served by the CDN for LFS files;
- errors the way the Hub signals them: status plus X-Error-Code / X-Error-Message.
It counts the body bytes it sends per file, and can corrupt a file, pause mid-file (to kill the
client there) or stall forever.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any
from urllib.parse import unquote, urlsplit

from mimo_operator.models.family import published_config

CHUNK = 64 * 1024


@dataclass(frozen=True)
class RepoFile:
    name: str
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def blob_id(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def pointer_blob_id(self) -> str:
        spec = "https://git-lfs.github.com/spec/v1"
        pointer = f"version {spec}\noid sha256:{self.sha256}\nsize {len(self.content)}\n"
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer.encode()).hexdigest()


def safetensors_like(seed: int, n_bytes: int) -> bytes:
    """A file in the safetensors layout (u64 header length, JSON header, raw data) of random floats."""
    data = Random(seed).randbytes(n_bytes)
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_bytes // 4], "data_offsets": [0, n_bytes]}})
    header_bytes = header.encode().ljust((len(header) + 7) // 8 * 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + data


def fine_tune_config() -> dict[str, Any]:
    """The config.json of a fine-tune built like MiMo-V2.5 (its published config under another name),
    as a fine-tune's repository would carry it."""
    return {**published_config("XiaomiMiMo/MiMo-V2.5"), "_name_or_path": "example/mimo-v2.5-fine-tune"}


def generated_repo(
    shard_mib: tuple[int, ...] = (3, 3, 3), config: dict[str, Any] | None = None
) -> list[RepoFile]:
    """Safetensors-like shards of the given sizes, an index and a config: a checkpoint in miniature."""
    n = len(shard_mib)
    files = [
        RepoFile(f"model-{i:05d}-of-{n:05d}.safetensors", safetensors_like(i, mib * 1024 * 1024), lfs=True)
        for i, mib in enumerate(shard_mib, start=1)
    ]
    index = {"weight_map": {f"layer{i}.w": f.name for i, f in enumerate(files)}}
    files.append(RepoFile("model.safetensors.index.json", json.dumps(index).encode(), lfs=False))
    config_text = json.dumps(config if config is not None else fine_tune_config(), indent=2)
    files.append(RepoFile("config.json", config_text.encode(), lfs=False))
    return files


@dataclass
class LocalHub:
    repo_id: str
    files: list[RepoFile]
    token: str | None = None
    """When set, every Hub request must carry it."""
    gated_tokens: frozenset[str] = frozenset()
    """Tokens the Hub knows but whose accounts were not granted the gated repository."""
    corrupt: set[str] = field(default_factory=set)
    """Files served with one byte changed while the metadata keeps the true hash."""
    pause_at: dict[str, int] = field(default_factory=dict)
    """Stop sending a file after this many bytes (once) until `release` is set."""
    bytes_sent: Counter[str] = field(default_factory=Counter)
    paused: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(b"".join(f.content for f in self.files)).hexdigest()
        self.sha = digest
        self.revisions = {"main": digest, digest: digest, "v1.0": digest}
        self._by_name = {f.name: f for f in self.files}
        self._by_sha256 = {f.sha256: f for f in self.files if f.lfs}
        self._servers: list[ThreadingHTTPServer] = []
        self._paused_once: set[str] = set()

    # -- lifecycle
    def start(self) -> str:
        hub = _server(("127.0.0.1", 0), self, cdn=False)
        cdn = _server(("127.0.0.2", 0), self, cdn=True)
        self._servers = [hub, cdn]
        for s in self._servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.cdn_base = f"http://127.0.0.2:{cdn.server_address[1]}"
        self.endpoint = f"http://127.0.0.1:{hub.server_address[1]}"
        return self.endpoint

    def stop(self) -> None:
        self.release.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()

    @property
    def total_bytes(self) -> int:
        return sum(len(f.content) for f in self.files)

    # -- the API
    def auth_error(self, authorization: str | None) -> tuple[int, dict[str, str]] | None:
        if self.token is None:
            return None
        given = authorization.removeprefix("Bearer ") if authorization else None
        if given is None:
            return 401, {"X-Error-Message": "Access to this model is restricted. Please log in."}
        if given in self.gated_tokens:
            return 403, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to this model is restricted"}
        if given != self.token:
            return 401, {"X-Error-Message": "Invalid credentials in Authorization header"}
        return None

    def model_info(self, revision: str) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "sha": self.revisions[revision],
            "siblings": [
                {
                    "rfilename": f.name,
                    "size": len(f.content),
                    "blobId": f.pointer_blob_id if f.lfs else f.blob_id,
                    **(
                        {"lfs": {"size": len(f.content), "sha256": f.sha256, "pointerSize": 134}}
                        if f.lfs
                        else {}
                    ),
                }
                for f in self.files
            ],
        }

    def body_of(self, f: RepoFile) -> bytes:
        if f.name not in self.corrupt:
            return f.content
        middle = len(f.content) // 2
        return f.content[:middle] + bytes([f.content[middle] ^ 0xFF]) + f.content[middle + 1 :]


def _server(address: tuple[str, int], hub: LocalHub, *, cdn: bool) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"hub": hub, "is_cdn": cdn})
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    return server


_MODEL_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha256>[0-9a-f]{64})$")


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    is_cdn: bool
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def _route(self, *, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if self.is_cdn:
            m = _CDN.match(path)
            if m is None or m["sha256"] not in self.hub._by_sha256:
                return self._error(404, {})
            return self._serve(self.hub._by_sha256[m["sha256"]], send_body)
        denied = self.hub.auth_error(self.headers.get("Authorization"))
        if (m := _MODEL_INFO.match(path)) is not None:
            if m["repo"] != self.hub.repo_id:
                return self._error(404, {"X-Error-Code": "RepoNotFound"})
            if denied:
                return self._error(*denied)
            revision = unquote(m["rev"] or "main")
            if revision not in self.hub.revisions:
                return self._error(404, {"X-Error-Code": "RevisionNotFound"})
            return self._json(self.hub.model_info(revision))
        if (m := _RESOLVE.match(path)) is not None:
            if m["repo"] != self.hub.repo_id:
                return self._error(404, {"X-Error-Code": "RepoNotFound"})
            if denied:
                return self._error(*denied)
            revision = unquote(m["rev"])
            if revision not in self.hub.revisions:
                return self._error(404, {"X-Error-Code": "RevisionNotFound"})
            f = self.hub._by_name.get(unquote(m["path"]))
            if f is None:
                return self._error(404, {"X-Error-Code": "EntryNotFound"})
            commit = self.hub.revisions[revision]
            if f.lfs:
                self.send_response(302)
                self.send_header("Location", f"{self.hub.cdn_base}/cdn/{f.sha256}")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{f.pointer_blob_id}"')
                self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                self.send_header("X-Linked-Size", str(len(f.content)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._serve(f, send_body, {"X-Repo-Commit": commit, "ETag": f'"{f.blob_id}"'})
        return self._error(404, {})

    def _serve(self, f: RepoFile, send_body: bool, extra: dict[str, str] | None = None) -> None:
        body = self.hub.body_of(f)
        start = 0
        if (rng := self.headers.get("Range")) is not None and (m := re.match(r"bytes=(\d+)-$", rng)):
            start = int(m[1])
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not send_body:
            return
        pause = self.hub.pause_at.get(f.name)
        offset = start
        while offset < len(body):
            end = min(offset + CHUNK, len(body))
            with self.hub.lock:
                if pause is not None and f.name not in self.hub._paused_once and end > pause >= offset:
                    end = pause
                    self.hub._paused_once.add(f.name)
                    pausing = True
                else:
                    pausing = False
            if end > offset:
                try:
                    self.wfile.write(body[offset:end])
                    self.wfile.flush()
                except OSError:
                    return
                with self.hub.lock:
                    self.hub.bytes_sent[f.name] += end - offset
                offset = end
            if pausing:
                self.hub.paused.set()
                self.hub.release.wait()
                self.close_connection = True
                return

    def _json(self, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, headers: dict[str, str]) -> None:
        body = json.dumps({"error": headers.get("X-Error-Message", "error")}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
