"""Attester parties as real processes: ``sentinel attester serve`` on 127.0.0.1, each with its own keyfile,
its own copy of the feed and its own signing record; stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sentinel.chain import anvil
from sentinel.chain.keys import Key


@dataclass
class AttesterProcess:
    """One attester party: its key, feed copy, record, port and (while running) process."""

    key: Key
    home: Path
    root: Path
    rpc: str
    port: int = field(default_factory=anvil.free_port)
    process: subprocess.Popen[bytes] | None = None
    market: str | None = None  #: the market of sentinel.toml it signs for (None: the only or default one)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def feed(self) -> Path:
        """The directory of feed files this party follows (tests add one file per slice, in time order)."""
        return self.home / "feed"

    @property
    def log(self) -> Path:
        return self.home / "attester.log"

    def start(self, timeout: float = 60.0) -> AttesterProcess:
        """Start the service and wait until it answers /healthz (ready or not)."""
        return self.launch().wait_answering(timeout)

    def launch(self) -> AttesterProcess:
        """Start the process, without waiting."""
        self.feed.mkdir(parents=True, exist_ok=True)
        keyfile = self.home / "key"
        if not keyfile.exists():
            keyfile.write_text(self.key.secret + "\n")
            keyfile.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "--root", str(self.root), "attester", "serve",
                 "--data", str(self.feed), "--keyfile", str(keyfile), "--port", str(self.port), "--rpc", self.rpc,
                 "--record", str(self.home / "signed.sqlite"), *(["--market", self.market] if self.market else [])],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_answering(self, timeout: float = 60.0) -> AttesterProcess:
        """Wait until the service answers /healthz (ready or not)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"attester {self.key.address} exited with {self.process.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):  # noqa: S310 - local test service
                    return self
            except urllib.error.HTTPError:
                return self  # answering (503 while its feed is empty)
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"attester {self.key.address} did not answer within {timeout:g} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_parties(keys: list[Key], home: Path, root: Path, rpc: str) -> list[AttesterProcess]:
    """One attester process per key under ``home``/<n>, started in parallel; all stopped if one fails."""
    parties = [AttesterProcess(key, home / f"attester-{n}", root, rpc) for n, key in enumerate(keys)]
    try:
        for party in parties:
            party.home.mkdir(parents=True, exist_ok=True)
        for party in parties:
            party.launch()
        for party in parties:
            party.wait_answering()
    except BaseException:
        for party in parties:
            party.stop()
        raise
    return parties
