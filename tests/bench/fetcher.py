"""`python -m tests.bench.fetcher`: what the weights fetcher costs over a raw transfer, and what a
kill mid-file costs on resume, against the local Hub of tests/fetcher (loopback, no real weights).

1. raw: the same files fetched with plain ranged-less GETs (httpx2, following the CDN redirect) to disk;
2. fetcher: `python -m mimo_operator.fetcher` end to end (interpreter start, revision pinning,
   HEAD per file, transfer, sha256 of every shard, marker);
3. resume: the fetcher killed in the middle of a shard, then run again; bytes the server sent twice.
Prints the numbers; not a test. Environment: BENCH_FETCH_SHARDS (default 4), BENCH_FETCH_SHARD_MIB (64).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from tests.fetcher.hub_server import LocalHub, generated_repo
from tests.fetcher.test_fetcher_process import REPO, fetcher_command, fetcher_env

MIB = 1024 * 1024


def raw_transfer(hub: LocalHub, dest: Path) -> float:
    dest.mkdir(parents=True)
    start = time.perf_counter()
    with httpx2.Client(follow_redirects=True, timeout=60) as client:
        for f in hub.files:
            url = f"{hub.endpoint}/{hub.repo_id}/resolve/main/{f.name}"
            with client.stream("GET", url) as response, (dest / f.name).open("wb") as out:
                for chunk in response.iter_bytes(10 * MIB):
                    out.write(chunk)
    return time.perf_counter() - start


def fetcher_run(hub: LocalHub, work: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        fetcher_command(hub, work / "weights"),
        env=fetcher_env(hub, work, None),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def resume_cost(hub: LocalHub, work: Path, pause_at: int) -> int:
    shard = hub.files[1]
    hub.pause_at[shard.name] = pause_at
    proc = subprocess.Popen(
        fetcher_command(hub, work / "weights"), env=fetcher_env(hub, work, None), stdout=subprocess.DEVNULL
    )
    hub.paused.wait(120)
    time.sleep(1)  # let the client write what it holds
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    hub.release.set()
    subprocess.run(
        fetcher_command(hub, work / "weights"),
        env=fetcher_env(hub, work, None),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return sum(hub.bytes_sent.values()) - hub.total_bytes


def main() -> None:
    shards = int(os.environ.get("BENCH_FETCH_SHARDS", "4"))
    shard_mib = int(os.environ.get("BENCH_FETCH_SHARD_MIB", "64"))
    files = generated_repo((shard_mib,) * shards)
    total = sum(len(f.content) for f in files)
    with tempfile.TemporaryDirectory(prefix="bench-fetcher-") as tmp:
        work = Path(tmp)
        hub = LocalHub(REPO, files)
        hub.start()
        try:
            raw = min(raw_transfer(hub, work / f"raw{i}") for i in range(3))
            runs = []
            for _ in range(3):
                shutil.rmtree(work / "weights", ignore_errors=True)
                runs.append(fetcher_run(hub, work))
        finally:
            hub.stop()
        fetch = min(runs)
        shutil.rmtree(work / "weights", ignore_errors=True)
        hub = LocalHub(REPO, files)
        hub.start()
        try:
            pause = shard_mib * MIB // 2 + 12345
            resent = resume_cost(hub, work, pause)
        finally:
            hub.stop()
    print(f"checkpoint: {shards} x {shard_mib} MiB = {total / MIB:.1f} MiB on loopback")
    print(f"raw transfer (best of 3):   {raw:6.2f} s  {total / MIB / raw:7.1f} MiB/s")
    print(f"fetcher (best of 3):        {fetch:6.2f} s  {total / MIB / fetch:7.1f} MiB/s")
    print(f"fetcher adds:               {fetch - raw:6.2f} s  ({fetch / raw:.2f}x the raw transfer)")
    print(f"killed at {pause} bytes into a shard: {resent} bytes sent twice ({resent / MIB:.2f} MiB)")


if __name__ == "__main__":
    main()
    sys.exit(0)
