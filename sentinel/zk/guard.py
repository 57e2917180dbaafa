"""Run a heavy child process under a resident-memory cap.

The seed architecture's circuit needs 12-24+ GB to set up and prove on this
class of machine; left alone, the kernel's OOM killer ends it (and possibly
other work) without a word. Here the parent samples the child's resident
set (the whole process group, from /proc) and, past the cap, kills the group
and raises :class:`MemoryCapExceeded` naming the phase the child last
reported, the RSS it reached and the elapsed time.

The child reports its phase by printing ``phase: NAME`` lines on stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import CircuitError

PHASE_PREFIX = "phase: "


class MemoryCapExceeded(CircuitError):
    """A guarded child went past its resident-memory cap and was killed."""

    def __init__(self, what: str, phase: str, rss_bytes: int, cap_bytes: int, seconds: float) -> None:
        self.phase, self.rss_bytes, self.cap_bytes, self.seconds = phase, rss_bytes, cap_bytes, seconds
        super().__init__(f"{what}: killed in phase '{phase}' after {seconds:.0f} s at "
                         f"{rss_bytes / 1e9:.1f} GB resident, over the {cap_bytes / 1e9:.1f} GB cap")


@dataclass(frozen=True)
class GuardedResult:
    """What a guarded child left behind."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    seconds: float


def total_memory_bytes() -> int:
    """Physical memory of this machine (from /proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise CircuitError("/proc/meminfo has no MemTotal line")


def group_rss_bytes(pgid: int) -> int:
    """Summed resident set of every live process in process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command: state ppid pgrp ...
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            continue  # the process ended while being read
    return total


def run_guarded(cmd: list[str], cap_bytes: int, what: str, *, poll_seconds: float = 0.2,
                env: dict[str, str] | None = None) -> GuardedResult:
    """Run ``cmd`` in its own process group; kill it and raise if its RSS passes ``cap_bytes``."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env=env)
    phase = ["start"]
    err_lines: list[str] = []
    out_chunks: list[str] = []

    def read_stderr() -> None:
        for line in child.stderr or ():
            err_lines.append(line)
            if line.startswith(PHASE_PREFIX):
                phase[0] = line[len(PHASE_PREFIX):].strip()

    def read_stdout() -> None:
        if child.stdout is not None:
            out_chunks.append(child.stdout.read())

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for reader in readers:
        reader.start()
    peak = 0
    try:
        while child.poll() is None:
            rss = group_rss_bytes(child.pid)
            peak = max(peak, rss)
            if rss > cap_bytes:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                raise MemoryCapExceeded(what, phase[0], rss, cap_bytes, time.perf_counter() - start)
            time.sleep(poll_seconds)
    except BaseException:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        raise
    for reader in readers:
        reader.join(timeout=5)
    return GuardedResult(child.returncode, "".join(out_chunks), "".join(err_lines), peak,
                         time.perf_counter() - start)
