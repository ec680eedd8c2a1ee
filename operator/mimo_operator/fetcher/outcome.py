"""How a fetch ends: one class per failure a person must act on, each with its own exit code.

The exit code is the coarse signal (a Job's pod status carries it even when nothing else survives);
the one-sentence message is the fine one. The operator maps both onto the `WeightsReady` condition,
so these names are part of the contract between the fetcher and the operator.
"""

from __future__ import annotations

import enum


class FailureKind(enum.Enum):
    """Why a fetch failed. Values are (exit code, condition reason)."""

    UNAUTHORIZED = (10, "Unauthorized")
    """401/403: token missing, not accepted, or the account has no access to a gated repository."""
    NOT_FOUND = (11, "NotFound")
    """404: no such repository, revision or file."""
    DISK_TOO_SMALL = (12, "DiskTooSmall")
    """The volume cannot hold what is still to be downloaded."""
    CHECKSUM_MISMATCH = (13, "ChecksumMismatch")
    """A downloaded file's size or hash differs from what the Hub published for it."""
    STALLED = (14, "Stalled")
    """No byte arrived for the stall timeout."""
    TRANSFER_ERROR = (15, "TransferError")
    """Anything else on the way (network, server errors); retrying may help."""

    @property
    def exit_code(self) -> int:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]

    @classmethod
    def from_exit_code(cls, code: int) -> FailureKind | None:
        """The failure a fetcher's exit code stands for; None for success or an unknown code."""
        for kind in cls:
            if kind.exit_code == code:
                return kind
        return None


class FetchFailed(Exception):
    """A fetch that cannot go on. `message` is one sentence meant for a person."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
