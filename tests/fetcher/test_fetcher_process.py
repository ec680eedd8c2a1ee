"""The fetcher as a real process, with the real huggingface_hub client, against a local Hub.

Each test starts `python -m mimo_operator.fetcher` exactly as the download Job does and judges it by
what a person (or the operator) would see: exit code, the termination message, the files in the
volume, and how many bytes the server had to send.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mimo_operator.fetcher.config_report import decode_config
from mimo_operator.fetcher.outcome import FailureKind
from mimo_operator.models.checkpoint import planning_config
from tests.fetcher.hub_server import LocalHub, fine_tune_config, generated_repo

REPO = "XiaomiMiMo/MiMo-V2-Flash"
TOKEN = "hf_test_token_with_access"
MIB = 1024 * 1024
CLIENT_CHUNK = 10 * MIB


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    final: dict[str, Any]


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    server = LocalHub(REPO, generated_repo())
    server.start()
    yield server
    server.stop()


def fetcher_command(hub: LocalHub, dest: Path, *extra: str, revision: str = "main") -> list[str]:
    return [
        sys.executable,
        "-m",
        "mimo_operator.fetcher",
        "--repo",
        hub.repo_id,
        "--revision",
        revision,
        "--dest",
        str(dest),
        "--termination-log",
        str(dest.parent / "termination-log"),
        "--progress-interval",
        "0.2",
        *extra,
    ]


def fetcher_env(hub: LocalHub, tmp_path: Path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_fetcher(
    hub: LocalHub, tmp_path: Path, *extra: str, revision: str = "main", token: str | None = None
) -> Run:
    dest = tmp_path / "weights"
    proc = subprocess.run(
        fetcher_command(hub, dest, *extra, revision=revision),
        env=fetcher_env(hub, tmp_path, token),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    final = json.loads((tmp_path / "termination-log").read_text())
    return Run(proc.returncode, proc.stdout, proc.stderr, final)


def assert_complete_copy(hub: LocalHub, dest: Path) -> None:
    for f in hub.files:
        assert hashlib.sha256((dest / f.name).read_bytes()).hexdigest() == f.sha256, f.name
    marker = json.loads((dest / ".mimo-weights" / "complete.json").read_text())
    assert marker["sha"] == hub.sha
    assert marker["bytesTotal"] == hub.total_bytes


def test_full_download_pins_the_commit_and_verifies_every_file(hub: LocalHub, tmp_path: Path) -> None:
    run = run_fetcher(hub, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_complete_copy(hub, tmp_path / "weights")
    assert run.final["phase"] == "Complete"
    assert run.final["sha"] == hub.sha
    assert run.final["bytesDone"] == run.final["bytesTotal"] == hub.total_bytes
    assert run.final["filesDone"] == len(hub.files)
    # Every file crossed the wire once; the progress lines on stdout are what the operator reads.
    assert sum(hub.bytes_sent.values()) == hub.total_bytes
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[-1] == run.final
    # The planner's part of the checkpoint's own config.json, for a fine-tune planned from it.
    assert decode_config(run.final["config"]) == planning_config(fine_tune_config())


def test_a_second_run_on_a_complete_copy_fetches_nothing(hub: LocalHub, tmp_path: Path) -> None:
    assert run_fetcher(hub, tmp_path).returncode == 0
    sent_first = sum(hub.bytes_sent.values())
    hub.stop()  # the Hub is unreachable now: the marker alone must answer

    run = run_fetcher(hub, tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.final["phase"] == "Complete"
    assert sum(hub.bytes_sent.values()) == sent_first
    assert decode_config(run.final["config"]) == planning_config(fine_tune_config())


def test_a_repository_without_a_config_reports_none(tmp_path: Path) -> None:
    files = [f for f in generated_repo() if f.name != "config.json"]
    server = LocalHub(REPO, files)
    server.start()
    try:
        run = run_fetcher(server, tmp_path)
    finally:
        server.stop()

    assert run.returncode == 0, run.stderr
    assert "config" not in run.final


def test_killed_mid_file_resumes_without_sending_completed_files_again(tmp_path: Path) -> None:
    # huggingface_hub writes a download in 10 MiB pieces (constants.DOWNLOAD_CHUNK_SIZE), so the
    # interrupted shard is larger than that for some of it to be on disk when the pod dies.
    hub = LocalHub(REPO, generated_repo((3, 24, 3)))
    hub.start()
    shard = hub.files[1]
    hub.pause_at[shard.name] = 15 * MIB
    dest = tmp_path / "weights"
    part = dest / ".mimo-weights" / "partial" / f"{shard.name}.part"
    proc = subprocess.Popen(
        fetcher_command(hub, dest), env=fetcher_env(hub, tmp_path, None), stdout=subprocess.DEVNULL
    )
    try:
        assert hub.paused.wait(60), "the server never reached the pause point"
        deadline = time.monotonic() + 30
        while (part.stat().st_size if part.exists() else 0) < CLIENT_CHUNK and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        hub.release.set()
        assert not (dest / ".mimo-weights" / "complete.json").exists()
        on_disk_at_kill = part.stat().st_size
        assert on_disk_at_kill == CLIENT_CHUNK

        run = run_fetcher(hub, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        hub.stop()

    assert run.returncode == 0, run.stderr
    assert_complete_copy(hub, dest)
    # Completed files crossed the wire once; the interrupted one resumed from what was on disk.
    for f in hub.files:
        if f is not shard:
            assert hub.bytes_sent[f.name] == len(f.content), f.name
    assert hub.bytes_sent[shard.name] == len(shard.content) + (15 * MIB - on_disk_at_kill)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _progress(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=2) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data
    except OSError:
        return None  # not listening yet


def test_progress_is_answered_over_http_while_the_download_runs(tmp_path: Path) -> None:
    # What the operator reads by pod IP to show percent and ETA before the Job ends.
    hub = LocalHub(REPO, generated_repo((3, 24, 3)))
    hub.start()
    shard = hub.files[1]
    hub.pause_at[shard.name] = 15 * MIB
    port = _free_port()
    dest = tmp_path / "weights"
    command = fetcher_command(hub, dest, "--progress-port", str(port))
    proc = subprocess.Popen(command, env=fetcher_env(hub, tmp_path, None), stdout=subprocess.DEVNULL)
    try:
        assert hub.paused.wait(60), "the server never reached the pause point"
        deadline, seen = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            seen = _progress(port)
            if seen and seen["phase"] == "Downloading" and seen["bytesDone"] >= CLIENT_CHUNK:
                break
            time.sleep(0.1)
        assert seen is not None and seen["phase"] == "Downloading", seen
        assert seen["sha"] == hub.sha and seen["bytesTotal"] == hub.total_bytes
        # Held mid-shard: more than the first file, less than everything.
        assert len(hub.files[0].content) < seen["bytesDone"] < hub.total_bytes
        hub.release.set()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        hub.stop()
    assert_complete_copy(hub, dest)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, "no token was given"),
        ("hf_revoked", "did not accept the token"),
        ("hf_account_without_access", "gated repository"),
    ],
)
def test_refused_access_ends_with_the_reason(tmp_path: Path, token: str | None, expected: str) -> None:
    hub = LocalHub(REPO, generated_repo(), token=TOKEN, gated_tokens=frozenset({"hf_account_without_access"}))
    hub.start()
    try:
        run = run_fetcher(hub, tmp_path, token=token)
    finally:
        hub.stop()

    assert run.returncode == FailureKind.UNAUTHORIZED.exit_code
    assert run.final["phase"] == "Failed"
    assert run.final["reason"] == "Unauthorized"
    assert expected in run.final["message"]
    assert sum(hub.bytes_sent.values()) == 0


def test_the_right_token_is_accepted(tmp_path: Path) -> None:
    hub = LocalHub(REPO, generated_repo(), token=TOKEN)
    hub.start()
    try:
        run = run_fetcher(hub, tmp_path, token=TOKEN)
    finally:
        hub.stop()
    assert run.returncode == 0, run.stderr
    assert_complete_copy(hub, tmp_path / "weights")


def test_unknown_repository_is_not_found(hub: LocalHub, tmp_path: Path) -> None:
    asked = REPO + "h"  # a typo: the server only has REPO
    dest = tmp_path / "weights"
    command = fetcher_command(hub, dest)
    command[command.index("--repo") + 1] = asked
    proc = subprocess.run(
        command, env=fetcher_env(hub, tmp_path, None), capture_output=True, text=True, check=False
    )
    final = json.loads((tmp_path / "termination-log").read_text())

    assert proc.returncode == FailureKind.NOT_FOUND.exit_code
    assert final["reason"] == "NotFound"
    assert final["message"] == f"repository {asked} does not exist on the Hub (404)"


def test_wrong_revision_is_not_found(hub: LocalHub, tmp_path: Path) -> None:
    run = run_fetcher(hub, tmp_path, revision="v9.9-typo")

    assert run.returncode == FailureKind.NOT_FOUND.exit_code
    assert run.final["reason"] == "NotFound"
    assert run.final["message"] == f"revision 'v9.9-typo' does not exist in {REPO} (404)"
    assert sum(hub.bytes_sent.values()) == 0


def test_a_tag_is_pinned_to_its_commit(hub: LocalHub, tmp_path: Path) -> None:
    run = run_fetcher(hub, tmp_path, revision="v1.0")
    assert run.returncode == 0, run.stderr
    assert run.final["revision"] == "v1.0"
    assert run.final["sha"] == hub.sha


def test_corrupt_file_is_rejected_and_not_marked_complete(hub: LocalHub, tmp_path: Path) -> None:
    bad = hub.files[2].name
    hub.corrupt.add(bad)

    run = run_fetcher(hub, tmp_path)

    assert run.returncode == FailureKind.CHECKSUM_MISMATCH.exit_code
    assert run.final["reason"] == "ChecksumMismatch"
    assert run.final["message"].startswith(f"{bad} has sha256 ")
    dest = tmp_path / "weights"
    assert not (dest / ".mimo-weights" / "complete.json").exists()
    assert not (dest / bad).exists()
    assert not list((dest / ".mimo-weights" / "partial").glob("*.part"))


def test_volume_too_small_refuses_before_downloading(hub: LocalHub, tmp_path: Path) -> None:
    # A real 4 MiB filesystem (tmpfs) in a private mount namespace, so nothing is left mounted.
    dest = tmp_path / "weights"
    dest.mkdir()
    inner = " ".join(f"'{a}'" for a in fetcher_command(hub, dest))
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"mount -t tmpfs -o size=4m tmpfs '{dest}' && exec {inner}"],
        env=fetcher_env(hub, tmp_path, None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    final = json.loads((tmp_path / "termination-log").read_text())

    assert proc.returncode == FailureKind.DISK_TOO_SMALL.exit_code, proc.stderr
    assert final["reason"] == "DiskTooSmall"
    assert f"needs 9.0 MiB more ({hub.total_bytes} bytes" in final["message"]
    assert "4.0 MiB free" in final["message"]
    assert sum(hub.bytes_sent.values()) == 0


def test_stalled_server_gives_up_with_the_stalled_reason(hub: LocalHub, tmp_path: Path) -> None:
    shard = hub.files[0]
    hub.pause_at[shard.name] = len(shard.content) // 3  # and never released

    run = run_fetcher(hub, tmp_path, "--stall-seconds", "2")

    assert run.returncode == FailureKind.STALLED.exit_code
    assert run.final["reason"] == "Stalled"
    assert run.final["message"].startswith("no data arrived for 2 s")
    assert not (tmp_path / "weights" / ".mimo-weights" / "complete.json").exists()


def test_every_failure_class_has_its_own_exit_code() -> None:
    codes = [kind.exit_code for kind in FailureKind]
    assert len(set(codes)) == len(codes)
    assert 0 not in codes and 1 not in codes and 2 not in codes  # success, Python's crash, argparse's usage
    assert all(FailureKind.from_exit_code(kind.exit_code) is kind for kind in FailureKind)
