"""A real two-node Ray cluster on loopback for tests: a head and a second node, each its own ``ray start --block``
process group with a private temp dir, fixed free ports and one CPU; stopped by pid (never ``ray stop``, which
would stop every Ray on the machine)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sentinel.chain.anvil import free_port, port_in_use

RAY = Path(sys.executable).parent / "ray"  # the ray CLI of this environment (pinned with the ray package)
#: The two nodes' addresses: loopback, but not 127.0.0.1, which Ray replaces with the machine's own interface address
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"


def _ray_node(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    ports = {flag: free_port() for flag in ("--node-manager-port", "--object-manager-port",
                                            "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                            "--metrics-export-port", "--runtime-env-agent-port")}
    low = free_port()
    cmd = [str(RAY), "start", "--block", "--disable-usage-stats", "--num-cpus", "1", "--min-worker-port", str(low),
           "--max-worker-port", str(low + 200), *args]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def two_node_cluster(logs: Path, timeout: float = 90.0) -> Iterator[str]:
    """Start the head and a second node; yield the head's ``host:port`` once both are alive; stop both."""
    import ray

    temps = [Path(tempfile.mkdtemp(prefix="ray", dir="/tmp")) for _ in range(2)]  # Ray's socket paths: short
    port = free_port()
    address = f"{HEAD_IP}:{port}"
    head = _ray_node(["--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--include-dashboard=false",
                      "--temp-dir", str(temps[0]),
                      "--ray-client-server-port", str(free_port())], logs / "head.log")
    nodes = [head]
    try:
        deadline = time.monotonic() + timeout
        second_started = False
        while time.monotonic() < deadline:
            if head.poll() is not None:
                raise RuntimeError(f"ray head exited: {(logs / 'head.log').read_text()[-2000:]}")
            if not second_started and port_in_use(port, HEAD_IP):
                nodes.append(_ray_node(["--address", address, "--node-ip-address", NODE_IP, "--temp-dir",
                                        str(temps[1])], logs / "node.log"))
                second_started = True
            if second_started:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
                alive = sum(1 for n in ray.nodes() if n["Alive"])
                ray.shutdown()
                if alive == 2:
                    break
            time.sleep(1)
        else:
            raise RuntimeError(f"the two Ray nodes did not come up: {(logs / 'node.log').read_text()[-2000:]}")
        yield address
    finally:
        for node in reversed(nodes):
            _stop(node)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
