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
or queue is touched.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout
from sentinel.config import SentinelConfig, load_config


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


#: Anvil dev accounts of the three attester parties (the deployment registers them on a local chain).
PARTY_ACCOUNTS = (2, 3, 4)


def start_parties(root: Path, rpc: str, deadline: float = 60.0) -> list[tuple[subprocess.Popen[bytes], str, Path]]:
    """Three ``sentinel attester serve`` processes under ``root``/attester-N: (process, URL, feed directory)."""
    import urllib.error
    import urllib.request

    from sentinel.chain import anvil
    from sentinel.errors import RelayError

    parties = []
    for account in PARTY_ACCOUNTS:
        home = root / f"attester-{account}"
        (home / "feed").mkdir(parents=True)
        port = anvil.free_port()
        with (home / "attester.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "--root", str(root), "attester", "serve", "--data",
                 str(home / "feed"), "--demo-account", str(account), "--port", str(port), "--rpc", rpc,
                 "--record", str(home / "signed.sqlite")], stdout=log, stderr=subprocess.STDOUT)
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


def bench_relay(layout: ArtifactLayout, config: SentinelConfig, rows: int = 60, rows_per_second: float = 0.5,
                progress: Any = None) -> dict[str, Any]:
    """Replay ``rows`` rows at ``rows_per_second`` into a relay on a throwaway chain; measure what it confirms."""
    from sentinel.chain import anvil
    from sentinel.chain.deploy import deploy_all
    from sentinel.chain.keys import ANVIL_CHAIN_ID
    from sentinel.data.io import write_market_csv
    from sentinel.data.synthetic import generate
    from sentinel.relay.daemon import Relay, run
    from sentinel.relay.replay import replay, row_unix

    say = progress or (lambda step, detail: None)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-relay-") as tmp:
        root = Path(tmp)
        for part in ("circuits", "models"):
            (root / part).symlink_to(layout.root / part)
        temp_layout = ArtifactLayout(root)
        source = root / "source.csv"
        write_market_csv(generate(2, seed=11), source)
        lines = source.read_text().splitlines()
        first = 51
        rows = min(rows, len(lines) - 1 - first)
        port = anvil.free_port()
        process = anvil.spawn(port, ANVIL_CHAIN_ID, log=root / "anvil.log", timestamp=int(row_unix(lines[1])),
                              deadline_seconds=config.chain.startup_seconds)
        url = f"http://127.0.0.1:{port}"
        parties: list[tuple[subprocess.Popen[bytes], str, Path]] = []
        try:
            deploy_all(temp_layout, config, url, progress)
            say("relay", "starting three attester services")
            parties = start_parties(root, url)
            relay_config = load_config(layout.root, {
                **{f"{s}.{k}": v for s, fields in config.to_dict().items() for k, v in fields.items()},
                "relay.confirmations": 1, "relay.interval_seconds": 0.2, "relay.metrics_port": 0,
                "relay.attesters": ",".join(party_url for _, party_url, _ in parties)})
            relay = Relay(temp_layout, relay_config, data=root / "feed" / "market_depth.csv", rpc=url,
                          db=root / "queue.sqlite")
            say("relay", "starting the warm prover")
            relay.load_prover()
            stop = threading.Event()
            worker = threading.Thread(target=run, args=(relay, stop), name="relay", daemon=True)
            worker.start()
            say("relay", f"replaying {rows} rows at {rows_per_second:g} rows/s")
            started = time.time()
            replayed = replay(source, root / "feed" / "market_depth.csv", rows_per_second=rows_per_second,
                              first=first, last=first + rows - 1, prefill=50, chain_rpc=url,
                              copies=[(feed / "market_depth.csv", None) for _, _, feed in parties])
            replay_seconds = time.time() - started
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                queued = relay.queue.counts()
                if queued["new"] + queued["proving"] + queued["proved"] + queued["submitted"] == 0:
                    break
                time.sleep(0.5)
            stop.set()
            worker.join(timeout=600)
            windows = relay.queue.windows()
            relay.close()
        finally:
            stop_parties(parties)
            anvil.stop_process(process.pid)
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
