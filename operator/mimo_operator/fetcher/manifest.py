"""What to download: the revision pinned to a commit, and every file with the size and hash the Hub
publishes for it.

One `model_info(..., files_metadata=True)` call answers all of it: the commit sha the revision points
to now, and per file its size, its git blob id, and for LFS files (the weights) their sha256. Pinning
first means a branch that moves during a 300 GB download cannot mix two commits in one directory.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RevisionNotFoundError,
)

from mimo_operator.fetcher.outcome import FailureKind, FetchFailed

# The Hub's answer to a token it cannot parse or that was revoked; huggingface_hub keys on the same
# text (utils/_http.py, hf_raise_for_status) to tell it from "private or missing repository".
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the checkpoint as the Hub describes it."""

    name: str
    size: int
    sha256: str | None
    """Published for LFS files (every weight shard)."""
    blob_id: str | None
    """Git blob sha1, published for every file; checked for the small non-LFS ones."""


@dataclass(frozen=True)
class Manifest:
    repo: str
    revision: str
    sha: str
    files: tuple[RemoteFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def resolve_manifest(api: HfApi, repo: str, revision: str, *, token_given: bool) -> Manifest:
    """Pin `revision` to a commit and list the files there, or raise FetchFailed saying why not."""
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except HfHubHTTPError as err:
        raise classify_hub_error(err, repo, revision, token_given=token_given) from err
    except httpx2.HTTPError as err:
        raise FetchFailed(
            FailureKind.TRANSFER_ERROR, f"could not reach the Hub to resolve {repo}@{revision}: {err}"
        ) from err
    if not info.sha or info.siblings is None:
        raise FetchFailed(
            FailureKind.TRANSFER_ERROR,
            f"the Hub's answer for {repo}@{revision} lacks the commit or the file list",
        )
    files = []
    for sibling in info.siblings:
        if sibling.size is None:
            raise FetchFailed(
                FailureKind.TRANSFER_ERROR, f"the Hub published no size for {sibling.rfilename} in {repo}"
            )
        files.append(
            RemoteFile(
                name=sibling.rfilename,
                size=sibling.size,
                sha256=sibling.lfs.sha256 if sibling.lfs is not None else None,
                blob_id=sibling.blob_id,
            )
        )
    files.sort(key=lambda f: f.name)
    return Manifest(repo=repo, revision=revision, sha=info.sha, files=tuple(files))


def classify_hub_error(err: HfHubHTTPError, repo: str, revision: str, *, token_given: bool) -> FetchFailed:
    """Turn the Hub's refusal into the failure a person can act on, in one sentence."""
    status = err.response.status_code if err.response is not None else None
    if isinstance(err, GatedRepoError):
        return FetchFailed(
            FailureKind.UNAUTHORIZED,
            f"{repo} is a gated repository and the token's account has not been granted access "
            f"({status}); accept the model's terms on the Hub with that account",
        )
    if isinstance(err, RevisionNotFoundError):
        return FetchFailed(FailureKind.NOT_FOUND, f"revision {revision!r} does not exist in {repo} (404)")
    if isinstance(err, RemoteEntryNotFoundError):
        return FetchFailed(FailureKind.NOT_FOUND, f"a file listed for {repo}@{revision} is missing (404)")
    if status == 401:
        server_message = err.response.headers.get("X-Error-Message", "") if err.response is not None else ""
        if server_message == INVALID_TOKEN_MESSAGE:
            return FetchFailed(
                FailureKind.UNAUTHORIZED, "the Hub did not accept the token (401): invalid or revoked"
            )
        if not token_given:
            return FetchFailed(
                FailureKind.UNAUTHORIZED,
                f"no token was given and the Hub refused {repo} (401): "
                "it is private, gated or does not exist",
            )
        return FetchFailed(
            FailureKind.UNAUTHORIZED,
            f"the token cannot see {repo} (401): it is private and the token lacks read access, "
            "or the repository does not exist",
        )
    if status == 403:
        return FetchFailed(FailureKind.UNAUTHORIZED, f"the token is not allowed to read {repo} (403)")
    if status == 404:
        return FetchFailed(FailureKind.NOT_FOUND, f"repository {repo} does not exist on the Hub (404)")
    return FetchFailed(FailureKind.TRANSFER_ERROR, f"the Hub answered {status} for {repo}@{revision}")
