"""Checks a downloaded file against what the Hub published: size, then sha256 (LFS files) or the
git blob sha1 (small files kept in git). A checkpoint that loads with one silently corrupt shard
produces wrong answers, not an error; this is the only place it can be caught cheaply."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mimo_operator.fetcher.manifest import RemoteFile
from mimo_operator.fetcher.outcome import FailureKind, FetchFailed

CHUNK = 8 * 1024 * 1024


def _digest(path: Path, hasher: hashlib._Hash) -> str:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_file(path: Path, remote: RemoteFile) -> None:
    """Raise FetchFailed(CHECKSUM_MISMATCH) unless `path` is exactly `remote`."""
    size = path.stat().st_size
    if size != remote.size:
        raise FetchFailed(
            FailureKind.CHECKSUM_MISMATCH,
            f"{remote.name} has {size} bytes but the Hub published {remote.size}",
        )
    if remote.sha256 is not None:
        got = _digest(path, hashlib.sha256())
        if got != remote.sha256:
            raise FetchFailed(
                FailureKind.CHECKSUM_MISMATCH,
                f"{remote.name} has sha256 {got[:12]}… but the Hub published {remote.sha256[:12]}…",
            )
    elif remote.blob_id is not None:
        # A git blob id is sha1 over "blob <size>\0" followed by the content (git-hash-object(1)).
        hasher = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
        got = _digest(path, hasher)
        if got != remote.blob_id:
            raise FetchFailed(
                FailureKind.CHECKSUM_MISMATCH,
                f"{remote.name} has git blob id {got[:12]}… but the Hub published {remote.blob_id[:12]}…",
            )
