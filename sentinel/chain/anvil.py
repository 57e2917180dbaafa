"""A local Anvil node: start, readiness, stop, status (subprocess and JSON-RPC over urllib).

``sentinel chain up`` starts Anvil detached, in its own session, with its log,
description (pid, port, chain id) and state dump under ``.sentinel/chain/``
(``chain down`` stops the pid the description names); readiness is
polled with a deadline (never a bare sleep). The test suite starts one the
same way on a free port. Talking JSON-RPC here needs no web3, so these
commands start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, atomic_write_text
from sentinel.errors import ChainError, ChainUnavailable, PortInUse
from sentinel.toolchain.node import anvil

HOST = "127.0.0.1"


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call; transport and RPC errors become ChainUnavailable / ChainError."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - callers pass http:// RPC URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - callers pass http:// RPC URLs
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChainUnavailable(url, f"no JSON-RPC answer ({reason})") from exc
    except json.JSONDecodeError as exc:
        raise ChainUnavailable(url, "answered something that is not JSON-RPC") from exc
    if "error" in reply:
        raise ChainError(f"{url}: {method} failed: {reply['error'].get('message', reply['error'])}")
    return reply.get("result")


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something already listens on (host, port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, deadline_seconds: float, process: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> int:
    """Poll ``eth_chainId`` until it answers; returns the chain id. Fails early if the process died."""
    deadline = time.monotonic() + deadline_seconds
    delay = 0.02
    while True:
        if process is not None and process.poll() is not None:
            tail = _tail(log)
            raise ChainError(f"anvil exited with code {process.returncode} before answering"
                             + (f": {tail}" if tail else ""))
        try:
            return int(rpc(url, "eth_chainId", timeout=1.0), 16)
        except ChainUnavailable:
            if time.monotonic() >= deadline:
                raise ChainUnavailable(url, f"anvil did not answer within {deadline_seconds:g} s") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def anvil_command(port: int, chain_id: int, *, timestamp: int | None = None, state: Path | None = None) -> list[str]:
    """The Anvil command line: default code-size limit, automine, quiet."""
    cmd = [str(anvil()), "--host", HOST, "--port", str(port), "--chain-id", str(chain_id), "--silent"]
    if timestamp is not None:
        cmd += ["--timestamp", str(timestamp)]
    if state is not None:
        cmd += ["--state", str(state)]
    return cmd


def spawn(port: int, chain_id: int, *, log: Path, timestamp: int | None = None, state: Path | None = None,
          deadline_seconds: float = 30.0) -> subprocess.Popen[bytes]:
    """Start Anvil in its own session and wait until it answers; refuses a taken port."""
    if port_in_use(port):
        raise PortInUse(port)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(anvil_command(port, chain_id, timestamp=timestamp, state=state),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        got = wait_ready(f"http://{HOST}:{port}", deadline_seconds, process, log)
    except BaseException:
        stop_process(process.pid)
        raise
    if got != chain_id:
        stop_process(process.pid)
        raise ChainError(f"anvil on port {port} reports chain id {got}, expected {chain_id}")
    return process


def stop_process(pid: int, grace_seconds: float = 10.0) -> bool:
    """SIGTERM (Anvil dumps its state), then SIGKILL after the grace period; True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            if waited == pid:
                return True
        except ChildProcessError:
            pass
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_anvil(pid: int) -> bool:
    try:
        return "anvil" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return _alive(pid)


@dataclass(frozen=True)
class LocalChain:
    """A local Anvil started by ``sentinel chain up``."""

    pid: int
    port: int
    rpc_url: str
    chain_id: int
    started: str
    state_file: str
    log: str
    genesis_timestamp: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def running_chain(layout: ArtifactLayout) -> LocalChain | None:
    """The local Anvil recorded under .sentinel/chain if its process is still alive."""
    if not layout.anvil_info.exists():
        return None
    try:
        info = LocalChain(**json.loads(layout.anvil_info.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if _alive(info.pid) and _is_anvil(info.pid) else None


def chain_up(layout: ArtifactLayout, port: int, chain_id: int, *, fresh: bool = False,
             timestamp: int | None = None, deadline_seconds: float = 30.0) -> tuple[LocalChain, bool]:
    """Start the local Anvil (or report the running one); returns (chain, started now)."""
    current = running_chain(layout)
    if current is not None:
        if fresh or timestamp is not None:
            raise ChainError(f"a local Anvil is already running (pid {current.pid}, port {current.port})",
                             hint="`sentinel chain down` first")
        return current, False
    layout.ensure(layout.chain_dir)
    if fresh or timestamp is not None:
        # A genesis time only applies to a new chain; an old state dump would override it.
        layout.anvil_state.unlink(missing_ok=True)
        layout.deployments.unlink(missing_ok=True)
    process = spawn(port, chain_id, log=layout.anvil_log, timestamp=timestamp, state=layout.anvil_state,
                    deadline_seconds=deadline_seconds)
    chain = LocalChain(pid=process.pid, port=port, rpc_url=f"http://{HOST}:{port}", chain_id=chain_id,
                       started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       state_file=str(layout.anvil_state), log=str(layout.anvil_log),
                       genesis_timestamp=timestamp)
    atomic_write_text(layout.anvil_info, json.dumps(chain.to_dict(), indent=1) + "\n")
    return chain, True


def chain_down(layout: ArtifactLayout) -> LocalChain | None:
    """Stop the local Anvil (its state is dumped for the next `up`); returns what was stopped."""
    current = running_chain(layout)
    if current is not None:
        stop_process(current.pid)
    layout.anvil_info.unlink(missing_ok=True)
    return current


def chain_time(url: str) -> int:
    """Timestamp of the latest block."""
    return int(rpc(url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def warp(url: str, to_unix: int) -> int:
    """Move a local chain's clock forward to ``to_unix`` and mine a block there (dev chains only)."""
    now = chain_time(url)
    if to_unix <= now:
        raise ChainError(f"cannot warp back in time: the chain is at {now}, asked for {to_unix}")
    rpc(url, "evm_setNextBlockTimestamp", [hex(to_unix)])
    rpc(url, "evm_mine", [])
    return chain_time(url)
