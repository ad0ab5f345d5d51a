"""A default `hpo sweep` listens on loopback only: every TCP listener of the sweep's
processes (driver, GCS, raylet, workers, agents, metrics), read from /proc while trials
run, is bound to 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ENABLE_WINDOWS")}
ENV["PYTHONPATH"] = str(SRC)
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def listening_sockets() -> dict[str, str]:
    """socket inode -> the address it listens on, for every TCP listener of the machine."""
    found = {}
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(words)
            if family == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            found[fields[9]] = str(address)
    return found


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def listeners_of(pids: list[int]) -> dict[int, list[str]]:
    sockets = listening_sockets()
    bound: dict[int, list[str]] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for link in links:
            inode = link[len("socket:[") : -1] if link.startswith("socket:[") else None
            if inode in sockets:
                bound.setdefault(pid, []).append(sockets[inode])
    return bound


def test_a_default_sweep_listens_on_loopback_only(tmp_path):
    run_dir = tmp_path / "run"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "hpo", "sweep", "data=iris", "cv.folds=2",
         "trainer.max_epochs=30", "trainer.patience=30", "cluster.num_cpus=1",
         f"run_dir={run_dir}"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        rows = run_dir / "trials.jsonl"
        while not (rows.exists() and '"event": "result"' in rows.read_text()):
            assert sweep.poll() is None and time.monotonic() < deadline, "no trial ran"
            time.sleep(0.1)
        bound = listeners_of(session_pids(sweep.pid))
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    addresses = [a for listened in bound.values() for a in listened]
    assert len(bound) >= 3 and len(addresses) >= 5  # driver, GCS, raylet, workers, agents
    assert set(addresses) == {"127.0.0.1"}, bound
