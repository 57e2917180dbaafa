"""``sentinel bench --relay``: windows confirmed per minute and row-arrival -> confirmed latency.

Everything is throwaway: a fresh Anvil on a free port (genesis at the feed's
start), a deployment and a relay queue in a temp project that links the
project's circuit and model, and a generated feed replayed into a file at
``rows_per_second`` with the chain's clock following each row (as in the
demo). The relay runs its real loop (warm prover child, one pass after
another) in a thread of this process and asks three attester services,
separate ``sentinel attester serve`` processes on Anvil's dev accounts 2-4,
each following its own copy of the feed, for 2-of-3 signatures (the relay
holds no attester key). Nothing of the project's chain state, deployments
or queue is touched. :func:`relay_rig` sets all of this up and takes it down;
``sentinel bench --day`` (:mod:`sentinel.relay.day`) runs on it too.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig, load_config

if TYPE_CHECKING:
    from sentinel.relay.daemon import Relay


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


#: Anvil dev accounts of the three attester parties (the deployment registers them on a local chain).
PARTY_ACCOUNTS = (2, 3, 4)


def start_parties(root: Path, rpc: str, deadline: float = 60.0, *, accounts: tuple[int, ...] = PARTY_ACCOUNTS,
                  market: str | None = None) -> list[tuple[subprocess.Popen[bytes], str, Path]]:
    """A ``sentinel attester serve`` process per dev account (three by default) under ``root``/attester-N (with
    ``market``: attester-<market>-N, signing for that market): (process, URL, feed directory)."""
    import urllib.error
    import urllib.request

    from sentinel.chain import anvil
    from sentinel.errors import RelayError

    parties = []
    for account in accounts:
        home = root / (f"attester-{market}-{account}" if market else f"attester-{account}")
        (home / "feed").mkdir(parents=True)
        port = anvil.free_port()
        with (home / "attester.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "--root", str(root), "attester", "serve", "--data",
                 str(home / "feed"), "--demo-account", str(account), "--port", str(port), "--rpc", rpc,
                 "--record", str(home / "signed.sqlite"), *(["--market", market] if market else [])],
                stdout=log, stderr=subprocess.STDOUT)
        parties.append((process, f"http://127.0.0.1:{port}", home / "feed"))
    until = time.monotonic() + deadline
    for process, url, feed in parties:
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).close()  # noqa: S310 - our local service
                break
            except urllib.error.HTTPError:
                break  # answering (503 until its feed has rows)
            except OSError:
                if process.poll() is not None or time.monotonic() > until:
                    stop_parties(parties)
                    log_text = (feed.parent / "attester.log").read_text(errors="replace")[-2000:]
                    raise RelayError(f"bench: the attester service at {url} did not start:\n{log_text}") from None
                time.sleep(0.2)
    return parties


def stop_parties(parties: list[tuple[subprocess.Popen[bytes], str, Path]]) -> None:
    from sentinel.chain import anvil

    for process, _, _ in parties:
        anvil.stop_process(process.pid)


class Rig:
    """A relay on a throwaway chain, its real loop running in a thread of this process: what a bench replays a
    feed into (with :func:`sentinel.relay.replay.replay`, ``copies=`` :attr:`copies`)."""

    def __init__(self, rpc: str, relay: Relay, feed: Path, copies: list[tuple[Path, Path | None]]) -> None:
        from sentinel.relay.daemon import run
        from sentinel.relay.queue import Queue

        self.rpc = rpc
        self.relay = relay
        self.feed = feed  #: the relay's feed file
        self.copies = copies  #: each attester party's copy of the feed, fed in step
        #: this thread's own read-only view of the queue (the relay's connection belongs to its thread)
        self.view = Queue.read_only(relay.queue.path, market=relay.market)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=run, args=(relay, self._stop), name="relay", daemon=True)
        self._worker.start()

    def settled(self, through: int | None = None, *, held_ok: bool = True) -> bool:
        """True if every queued window is final (none new, proving, proved or submitted; ``held`` ones, waiting for
        the rest of their batch, count as settled unless ``held_ok`` is False) and, with ``through``, the relay has
        queued window ``through`` (it has read the row that ends it)."""
        from sentinel.relay.queue import FINAL, WAITING

        if through is not None:
            newest = self.view.max_id()
            if newest is None or newest < through:
                return False
        done = FINAL | WAITING if held_ok else FINAL
        return all(n == 0 for state, n in self.view.counts().items() if state not in done)

    def wait_settled(self, through: int | None = None, deadline_seconds: float = 600.0, *,
                     held_ok: bool = True) -> bool:
        """Wait until :meth:`settled`; False if it is not by the deadline or the relay's loop is gone."""
        until = time.monotonic() + deadline_seconds
        while not self.settled(through, held_ok=held_ok):
            if time.monotonic() > until or not self._worker.is_alive():
                return False
            time.sleep(0.1)
        return True

    def flush_held(self, deadline_seconds: float = 600.0) -> bool:
        """The feed has ended: let chain time pass (Anvil) until windows held for a batch are proved alone, and
        wait for every window to be final. True if none was held or all are final by the deadline."""
        from sentinel.chain import anvil

        held = self.view.windows("held")
        if not held:
            return True
        due = max(w.end_unix for w in held) + (self.relay.batch_windows + 1) * int(self.relay.cadence)
        if due > anvil.chain_time(self.rpc):
            anvil.warp(self.rpc, due)
        return self.wait_settled(deadline_seconds=deadline_seconds, held_ok=False)

    def halt(self) -> None:
        """Stop the relay's loop (the current step finishes) and wait for it; then the relay's queue may be read
        from this thread. Once: later calls do nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._worker.join(timeout=600)
        self.view.close()


@contextmanager
def relay_rig(layout: ArtifactLayout, config: SentinelConfig, genesis_unix: int, overrides: dict[str, Any],
              progress: Any = None) -> Iterator[Rig]:
    """A fresh Anvil (genesis at ``genesis_unix``), a deployment, three attester services and a relay with its warm
    prover, in a temp project linking the project's circuit and model; all stopped on exit.

    The relay's settings are the project's with ``overrides`` (dotted keys) on top of the bench's: one
    confirmation (Anvil mines when asked), a short idle interval, no metrics server, the three parties' URLs.
    """
    from sentinel.chain import anvil
    from sentinel.chain.deploy import deploy_all
    from sentinel.chain.keys import ANVIL_CHAIN_ID
    from sentinel.relay.daemon import Relay

    say = progress or (lambda step, detail: None)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-relay-") as tmp:
        root = Path(tmp)
        for part in ("circuits", "models"):
            (root / part).symlink_to(layout.root / part)
        temp_layout = ArtifactLayout(root)
        port = anvil.free_port()
        process = anvil.spawn(port, ANVIL_CHAIN_ID, log=root / "anvil.log", timestamp=genesis_unix,
                              deadline_seconds=config.chain.startup_seconds)
        url = f"http://127.0.0.1:{port}"
        parties: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        relay: Relay | None = None
        rig: Rig | None = None
        try:
            deploy_all(temp_layout, config, url, progress)
            say("relay", "starting three attester services")
            parties = start_parties(root, url)
            relay_config = load_config(layout.root, {
                **{f"{s}.{k}": v for s, fields in config.to_dict().items() for k, v in fields.items()},
                "relay.confirmations": 1, "relay.interval_seconds": 0.2, "relay.metrics_port": 0,
                "relay.attesters": ",".join(party_url for _, party_url, _ in parties), **overrides})
            (root / "feed").mkdir()  # the feed file comes with the replay's first rows; its directory now
            relay = Relay(temp_layout, relay_config, data=root / "feed" / "market_depth.csv", rpc=url,
                          db=root / "queue.sqlite")
            say("relay", "starting the warm prover")
            relay.load_prover()
            rig = Rig(url, relay, root / "feed" / "market_depth.csv",
                      [(feed / "market_depth.csv", None) for _, _, feed in parties])
            yield rig
        finally:
            if rig is not None:
                rig.halt()
            if relay is not None:
                relay.close()
            stop_parties(parties)
            anvil.stop_process(process.pid)


def bench_relay(layout: ArtifactLayout, config: SentinelConfig, rows: int = 60, rows_per_second: float = 0.5,
                progress: Any = None) -> dict[str, Any]:
    """Replay ``rows`` rows at ``rows_per_second`` into a relay on a throwaway chain; measure what it confirms."""
    from sentinel.data.io import write_market_csv
    from sentinel.data.synthetic import generate
    from sentinel.relay.replay import replay, row_unix

    say = progress or (lambda step, detail: None)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-feed-") as tmp:
        source = Path(tmp) / "source.csv"
        write_market_csv(generate(2, seed=11), source)
        lines = source.read_text().splitlines()
        first = 51
        rows = min(rows, len(lines) - 1 - first)
        # every window, in order: this measures how fast the relay proves and confirms, not what it screens
        with relay_rig(layout, config, int(row_unix(lines[1])), {"relay.report": "every"}, progress) as rig:
            say("relay", f"replaying {rows} rows at {rows_per_second:g} rows/s")
            started = time.time()
            replayed = replay(source, rig.feed, rows_per_second=rows_per_second, first=first,
                              last=first + rows - 1, prefill=50, chain_rpc=rig.rpc, copies=rig.copies)
            replay_seconds = time.time() - started
            rig.wait_settled(deadline_seconds=600)
            rig.flush_held(deadline_seconds=600)
            rig.halt()
            windows = rig.relay.queue.windows()
    confirmed = [w for w in windows if w.state == "confirmed"]
    latencies = [w.confirmed_at - replayed.appended_at[w.end_unix] for w in confirmed
                 if w.end_unix in replayed.appended_at and w.confirmed_at]
    prove = [w.prove_seconds for w in confirmed if w.prove_seconds]
    span = max((w.confirmed_at for w in confirmed if w.confirmed_at is not None), default=started) - started
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.state] = counts.get(w.state, 0) + 1
    return {
        "rows": replayed.rows,
        "rows_per_second": rows_per_second,
        "replay_seconds": round(replay_seconds, 1),
        "windows": counts,
        "confirmed": len(confirmed),
        "windows_confirmed_per_minute": round(len(confirmed) / (span / 60), 2) if span > 0 else None,
        "latency_row_to_confirmed_seconds": {
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "p95": round(_percentile(latencies, 0.95), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
            "n": len(latencies),
        },
        "prove_seconds_median": round(statistics.median(prove), 1) if prove else None,
        "confirmations": 1,
        "attesters": "3 services, 2 of 3 signatures",
        "note": "every window in order; when rows arrive faster than one proof, the relay falls behind the feed",
    }
