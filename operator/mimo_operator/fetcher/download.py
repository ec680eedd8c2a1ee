"""Fills a directory with one pinned checkpoint: resumable, verified, marked complete at the end.

Layout of the destination directory (vLLM is pointed at it and only globs the top level):
    <dest>/<files of the repository>
    <dest>/.mimo-weights/complete.json   the completion marker, written last
    <dest>/.mimo-weights/verified.json   files already verified, so a restart skips them unread
    <dest>/.mimo-weights/progress.json   the last progress report
    <dest>/.mimo-weights/partial/        partial downloads, resumed with HTTP ranges on restart

Files go through huggingface_hub: `get_hf_file_metadata` (HEAD, following the Hub's redirect rules)
and `http_get` with `resume_size` (a ranged GET that also retries a dropped connection in-process).
Not `hf_hub_download` for plain HTTP: since huggingface_hub 1.x it writes to a process-unique temp
file and deletes it on failure, so a killed pod would lose the shard it was in the middle of. Files the
Hub stores in Xet go through `hf_hub_download` when the `hf_xet` package is installed: its chunked,
parallel transfer is the fast path (`hf_transfer` is no longer used by huggingface_hub 2.x, see
`constants.py` there), and its chunk cache makes a restart cheap too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers

from mimo_operator.fetcher.config_report import config_report
from mimo_operator.fetcher.manifest import Manifest, RemoteFile, classify_hub_error, resolve_manifest
from mimo_operator.fetcher.outcome import FailureKind, FetchFailed
from mimo_operator.fetcher.progress import FetchProgress
from mimo_operator.fetcher.verify import verify_file

STATE_DIR = ".mimo-weights"
MARKER = "complete.json"
VERIFIED = "verified.json"
PARTIAL = "partial"


@dataclass(frozen=True)
class FetchRequest:
    repo: str
    revision: str
    dest: Path
    endpoint: str
    token: str | None


def xet_backend_available() -> bool:
    """The fast path: the `hf_xet` package is installed and HF_HUB_DISABLE_XET is not set."""
    return importlib.util.find_spec("hf_xet") is not None and not constants.HF_HUB_DISABLE_XET


def state_dir(dest: Path) -> Path:
    return dest / STATE_DIR


def read_marker(dest: Path) -> dict[str, Any] | None:
    """The completion marker of `dest`, or None when the checkpoint there is not complete."""
    try:
        data = json.loads((state_dir(dest) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _marker_still_true(dest: Path, marker: dict[str, Any], request: FetchRequest) -> bool:
    if marker.get("repo") != request.repo:
        return False
    if request.revision not in (marker.get("revision"), marker.get("sha")):
        return False
    files = marker.get("files", {})
    try:
        return all((dest / name).stat().st_size == size for name, size in files.items())
    except OSError:
        return False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_verified(dest: Path, sha: str) -> dict[str, dict[str, int]]:
    try:
        data = json.loads((state_dir(dest) / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("sha") != sha:
        return {}
    files = data.get("files", {})
    return files if isinstance(files, dict) else {}


def _already_verified(dest: Path, remote: RemoteFile, verified: dict[str, dict[str, int]]) -> bool:
    record = verified.get(remote.name)
    if record is None:
        return False
    try:
        st = (dest / remote.name).stat()
    except OSError:
        return False
    return st.st_size == remote.size == record.get("size") and st.st_mtime_ns == record.get("mtimeNs")


def _part_path(dest: Path, remote: RemoteFile) -> Path:
    return state_dir(dest) / PARTIAL / (quote(remote.name, safe="") + ".part")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def check_space(dest: Path, needed: int, total: int) -> None:
    """Refuse to start a download that cannot fit, before a single byte is fetched."""
    usage = shutil.disk_usage(dest)
    if needed > usage.free:
        raise FetchFailed(
            FailureKind.DISK_TOO_SMALL,
            f"the volume at {dest} has {_human(usage.free)} free ({usage.free} bytes, {_human(usage.total)} "
            f"in all) but the checkpoint needs {_human(needed)} more ({needed} bytes; "
            f"{_human(total)} in all)",
        )


class Fetcher:
    """Runs one fetch; `progress` is read concurrently by the reporter and the stall watchdog."""

    def __init__(self, request: FetchRequest, progress: FetchProgress) -> None:
        self.request = request
        self.progress = progress
        self.api = HfApi(endpoint=request.endpoint, token=request.token or False)

    def run(self) -> None:
        request, dest = self.request, self.request.dest
        dest.mkdir(parents=True, exist_ok=True)
        marker = read_marker(dest)
        if marker is not None and _marker_still_true(dest, marker, request):
            self._set(phase="Complete", sha=marker.get("sha"), bytes_total=int(marker.get("bytesTotal", 0)))
            with self.progress.lock:
                self.progress.files_total = self.progress.files_done = len(marker.get("files", {}))
                self.progress.bytes_in_done_files = self.progress.bytes_total
                self.progress.config = config_report(dest)
            return
        manifest = resolve_manifest(self.api, request.repo, request.revision, token_given=bool(request.token))
        self._set(phase="Downloading", sha=manifest.sha, bytes_total=manifest.total_bytes)
        with self.progress.lock:
            self.progress.files_total = len(manifest.files)

        verified = _load_verified(dest, manifest.sha)
        todo = []
        for remote in manifest.files:
            if _already_verified(dest, remote, verified):
                self._count_done(remote)
            else:
                todo.append(remote)
        in_parts = sum(min(_size_or_zero(_part_path(dest, f)), f.size) for f in todo)
        needed = sum(f.size for f in todo) - in_parts
        check_space(dest, needed, manifest.total_bytes)

        for remote in todo:
            self._fetch_one(manifest, remote)
            verified[remote.name] = {"size": remote.size, "mtimeNs": (dest / remote.name).stat().st_mtime_ns}
            _write_json(state_dir(dest) / VERIFIED, {"sha": manifest.sha, "files": verified})

        self._set(phase="Complete")
        _write_json(
            state_dir(dest) / MARKER,
            {
                "repo": manifest.repo,
                "revision": manifest.revision,
                "sha": manifest.sha,
                "bytesTotal": manifest.total_bytes,
                "files": {f.name: f.size for f in manifest.files},
                "completedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        with self.progress.lock:
            self.progress.config = config_report(dest)

    def _fetch_one(self, manifest: Manifest, remote: RemoteFile) -> None:
        dest = self.request.dest
        final = dest / remote.name
        if final.is_file() and final.stat().st_size == remote.size:
            # Present but not in verified.json (e.g. copied in by hand, or killed between the rename
            # and the record): one read to verify is far cheaper than fetching it again.
            self._set(phase="Verifying")
            try:
                verify_file(final, remote)
                self._set(phase="Downloading")
                self._count_done(remote)
                return
            except FetchFailed:
                final.unlink()
            self._set(phase="Downloading")
        url = hf_hub_url(manifest.repo, remote.name, revision=manifest.sha, endpoint=self.request.endpoint)
        try:
            meta = get_hf_file_metadata(
                url, token=self.request.token or False, endpoint=self.request.endpoint
            )
        except HfHubHTTPError as err:
            raise classify_hub_error(
                err, manifest.repo, manifest.revision, token_given=bool(self.request.token)
            ) from err
        except httpx2.HTTPError as err:
            raise FetchFailed(
                FailureKind.TRANSFER_ERROR, f"metadata of {remote.name} unavailable: {err}"
            ) from err
        if meta.commit_hash is not None and meta.commit_hash != manifest.sha:
            raise FetchFailed(
                FailureKind.TRANSFER_ERROR,
                f"the Hub served {remote.name} from commit {meta.commit_hash}, not the pinned {manifest.sha}",
            )
        if meta.xet_file_data is not None and xet_backend_available():
            self._fetch_with_xet(manifest, remote)
        else:
            self._fetch_with_http(meta.location, remote)

    def _fetch_with_http(self, location: str, remote: RemoteFile) -> None:
        dest = self.request.dest
        part = _part_path(dest, remote)
        part.parent.mkdir(parents=True, exist_ok=True)
        if _size_or_zero(part) > remote.size:
            part.unlink()
        with self.progress.lock:
            self.progress.current_part = part
            self.progress.transferring = True
        try:
            with part.open("ab") as f:
                resume = f.tell()
                http_get(
                    location,
                    f,
                    resume_size=resume,
                    headers=build_hf_headers(token=self.request.token or False),
                    expected_size=remote.size,
                    displayed_filename=remote.name,
                )
        except HfHubHTTPError as err:
            raise classify_hub_error(
                err, self.request.repo, self.request.revision, token_given=bool(self.request.token)
            ) from err
        except (httpx2.HTTPError, OSError) as err:
            if isinstance(err, httpx2.TimeoutException):
                raise FetchFailed(
                    FailureKind.STALLED,
                    f"{remote.name} stopped arriving (read timeouts after retries): {err}",
                ) from err
            raise FetchFailed(FailureKind.TRANSFER_ERROR, f"{remote.name} failed to download: {err}") from err
        finally:
            with self.progress.lock:
                self.progress.transferring = False
        self._set(phase="Verifying")
        try:
            verify_file(part, remote)
        except FetchFailed:
            part.unlink()  # never resume from bytes known to be wrong
            raise
        final = dest / remote.name
        final.parent.mkdir(parents=True, exist_ok=True)
        with self.progress.lock:
            # One step under the lock, so bytesDone never dips while the part becomes the file.
            os.replace(part, final)
            self.progress.current_part = None
            self.progress.files_done += 1
            self.progress.bytes_in_done_files += remote.size
            self.progress.phase = "Downloading"

    def _fetch_with_xet(self, manifest: Manifest, remote: RemoteFile) -> None:
        # No stall watchdog here: hf_xet writes where we cannot watch bytes arrive, and it times out
        # and retries on its own.
        try:
            path = hf_hub_download(
                manifest.repo,
                remote.name,
                revision=manifest.sha,
                local_dir=self.request.dest,
                endpoint=self.request.endpoint,
                token=self.request.token or False,
            )
        except HfHubHTTPError as err:
            raise classify_hub_error(
                err, manifest.repo, manifest.revision, token_given=bool(self.request.token)
            ) from err
        self._set(phase="Verifying")
        try:
            verify_file(Path(path), remote)
        except FetchFailed:
            Path(path).unlink()
            raise
        self._set(phase="Downloading")
        self._count_done(remote)

    def _count_done(self, remote: RemoteFile) -> None:
        with self.progress.lock:
            self.progress.files_done += 1
            self.progress.bytes_in_done_files += remote.size

    def _set(self, **fields: Any) -> None:
        with self.progress.lock:
            for name, value in fields.items():
                setattr(self.progress, name, value)


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
