"""The memory guard around heavy child processes (the seed bench)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from sentinel.zk.guard import MemoryCapExceeded, run_guarded, total_memory_bytes

MB = 1 << 20

ALLOCATE = textwrap.dedent("""
    import sys, time
    print("phase: small", file=sys.stderr, flush=True)
    keep = bytearray(20 * 2**20)
    print("phase: big", file=sys.stderr, flush=True)
    keep += bytearray(int(sys.argv[1]) * 2**20)
    time.sleep(float(sys.argv[2]))
    print("done")
""")


def test_a_child_under_the_cap_runs_to_completion_and_reports_its_peak() -> None:
    result = run_guarded([sys.executable, "-c", ALLOCATE, "60", "0.6"], 1024 * MB, "small child", poll_seconds=0.05)
    assert result.returncode == 0
    assert result.stdout.strip() == "done"
    assert 60 * MB < result.peak_rss_bytes < 1024 * MB


def test_a_child_past_the_cap_is_killed_and_the_phase_is_named() -> None:
    with pytest.raises(MemoryCapExceeded) as caught:
        run_guarded([sys.executable, "-c", ALLOCATE, "400", "30"], 200 * MB, "greedy child", poll_seconds=0.05)
    error = caught.value
    assert error.phase == "big"
    assert error.rss_bytes > 200 * MB
    assert error.seconds < 25  # killed, not waited out
    assert "greedy child: killed in phase 'big'" in str(error)


def test_memory_held_by_a_grandchild_counts() -> None:
    spawn = textwrap.dedent(f"""
        import subprocess, sys
        print("phase: spawn", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-c", {ALLOCATE!r}, "400", "30"])
    """)
    with pytest.raises(MemoryCapExceeded):
        run_guarded([sys.executable, "-c", spawn], 200 * MB, "parent of a greedy child", poll_seconds=0.05)


def test_total_memory_is_read_from_proc() -> None:
    assert total_memory_bytes() > 256 * MB
