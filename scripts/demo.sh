#!/usr/bin/env bash
# End-to-end demo, driven only through the `sentinel` CLI (every step is a
# library function behind a command; nothing is re-typed here).
set -euo pipefail
cd "$(dirname "$0")/.."

out=.sentinel/demo
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "1. synthetic liquidity-crash scenarios (seeded, deterministic)"
sentinel data generate --out "$out/scenarios.csv" --episodes 40 --seed 7

step "2. strict validation of the generated feed"
sentinel data validate "$out/scenarios.csv"

step "3. a bad row is refused with file, row and column (expected to fail)"
head -n 30 "$out/scenarios.csv" > "$out/bad.csv"
sed -i '20s/^\([^,]*\),[^,]*,/\1,NaN,/' "$out/bad.csv"
if sentinel data validate "$out/bad.csv"; then
  echo "demo: validation accepted a NaN row" >&2; exit 1
fi

step "4. a market far from the seed's ranges: calibrate scenarios to it"
sentinel data generate --out "$out/btc_like.csv" --episodes 20 --seed 11 --like data/sample_market_depth.csv

step "5. pictures: a drain episode with its phases shaded"
episode=$(awk -F, 'NR > 1 && $8 == "drain" { print $7; exit }' "$out/scenarios.csv")
sentinel data plot "$out/scenarios.csv" --episode "$episode" --out "$out/drain_episode.png"

step "6. the committed risk model, re-evaluated from scratch beside the baselines"
sentinel evaluate

step "7. float-model risk of the latest window and of a window inside a crash"
crash_row=$(awk -F, 'NR > 1 && $9 == "crash" { n++ } NR > 1 && $9 == "crash" && n == 25 { print NR - 1; exit }' "$out/scenarios.csv")
sentinel score --data "$out/scenarios.csv" --window latest --window "$crash_row"

step "8. the circuit: EZKL settings, calibration, keys, fidelity, Solidity verifier (skipped when up to date)"
sentinel circuit build

step "9. prove the latest window (the crash windows are proven in step 15)"
sentinel prove --data "$out/scenarios.csv" --window latest

step "10. verify off-chain (with no argument: the newest bundle), then flip one byte of the proof (expected to fail)"
sentinel verify
bundle=$(sentinel verify --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["bundles"][0]["bundle"])')
latest_end=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["window_end_unix"])' "$bundle")
python3 - "$bundle" "$out/flipped.json" <<'PY'
import json, sys
bundle = json.load(open(sys.argv[1]))
proof = bundle["ezkl_proof"]
proof["proof"][64] ^= 1
proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
json.dump(bundle, open(sys.argv[2], "w"))
PY
if sentinel verify "$out/flipped.json"; then
  echo "demo: a tampered proof verified" >&2; exit 1
fi

step "11. two guarded markets, a local chain (Anvil, its clock at the latest window), contracts for each market"
# Each market has its own feed, attester services, breaker (pinned to its verifier) and vault. Both use this
# project's model here; a market's own (`sentinel onboard`) would go in its `artifacts`. The rest of the demo
# reads this file (SENTINEL_CONFIG), as an operator's sentinel.toml would hold it.
metrics_port=${SENTINEL_RELAY__METRICS_PORT:-9464}
attester_port=${SENTINEL_DEMO_ATTESTER_PORT:-9481}
chain_rpc="http://127.0.0.1:${SENTINEL_CHAIN__PORT:-8545}"
rm -rf "$out/relay" "$out/attesters" && mkdir -p "$out/relay"
cat > "$out/markets.toml" <<TOML
[markets.btc]
feed = "$PWD/$out/relay/btc"
asset = "WBTC"
attesters = ["http://127.0.0.1:$attester_port", "http://127.0.0.1:$((attester_port + 1))", "http://127.0.0.1:$((attester_port + 2))"]

[markets.eth]
feed = "$PWD/$out/relay/eth"
asset = "WETH"
attesters = ["http://127.0.0.1:$((attester_port + 3))", "http://127.0.0.1:$((attester_port + 4))"]
TOML
export SENTINEL_CONFIG="$PWD/$out/markets.toml"
cat "$out/markets.toml"
trap 'sentinel chain down >/dev/null 2>&1 || true' EXIT
sentinel chain up --fresh --timestamp $((latest_end + 60))
sentinel deploy
sentinel vault deposit 1000 --market btc
sentinel vault deposit 1000 --market eth

step "12. attest the latest window (EIP-712, k of n attesters), submit it with its proof to btc's breaker"
sentinel attest "$bundle" --data "$out/scenarios.csv" --market btc
sentinel submit "$bundle" --market btc
sentinel chain status
echo "-- the same window again is refused (expected to fail):"
if sentinel submit "$bundle" --market btc; then
  echo "demo: the breaker accepted a replayed window" >&2; exit 1
fi

step "13. a liquidity drain arrives in btc while eth stays calm: feeds to be appended row by row, as crawled"
# btc: the seed's drain (the classic space's), 52 rows from onset to the price bottom
sentinel data generate --out "$out/crash.csv" --episodes 1 --families drain --seed 5 --scenarios classic \
  --start "$(date -u -d "@$((latest_end + 60))" +%Y-%m-%dT%H:%M:%SZ)"
# eth: a market with no crash at the scale of the market the model was trained for (a model serves its own
# market: docs/model.md), hard negatives only: liquidity events that are not a crash
sentinel data generate --out "$out/eth.csv" --episodes 3 --families dip,spike,drift,withdrawal,move --seed 9 \
  --scenarios ranges --one-market
read -r onset bottom bottom_ts < <(awk -F, 'NR > 1 && $10 == 1 && !o { o = NR - 1 }
  NR > 1 && $9 == "crash" { b = NR - 1; t = $1 } END { print o, b, t }' "$out/crash.csv")
echo "btc: crash onset at data row $onset, price bottom at row $bottom ($bottom_ts)"
# eth's feed: those rows on the same minutes as btc's
python3 - "$out/crash.csv" "$out/eth.csv" "$out/calm.csv" <<'PY'
import sys
crash, calm = (open(p).read().splitlines() for p in sys.argv[1:3])
if len(calm) < len(crash):
    sys.exit("demo: eth's calm scenario is shorter than btc's crash scenario")
rows = [c.split(",", 1)[0] + "," + s.split(",", 1)[1] for c, s in zip(crash[1:], calm[1:])]
open(sys.argv[3], "w").write("\n".join([calm[0], *rows]) + "\n")
PY
echo "eth: rows $((onset - 70))-$((bottom + 5)) are replayed; their phases:" $(awk -F, -v a=$((onset - 70)) \
  -v b=$((bottom + 5)) 'NR > 1 && NR - 1 >= a && NR - 1 <= b { n[$9]++ } END { for (p in n) { printf "%s%s %d", s, p, n[p]; s = ", " } }' \
  "$out/calm.csv")
feed="$out/relay/btc/market_depth.csv"
queue="$out/relay/queue.sqlite"
# Attester c's copy of the feed disagrees on one row: the mid price of the second row written (inside the first
# windows the relay reports) is 1.00 higher. A valid row, so only a hash comparison can tell.
corrupt_row=$((onset - 69))
awk -F, -v OFS=, -v r="$((corrupt_row + 1))" 'NR == r { $5 = sprintf("%.3f", $5 + 1) } { print }' \
  "$out/crash.csv" > "$out/crash-attester-c.csv"

step "14. three attester parties, each its own process, key, copy of the feed and signing record (2 of 3 sign)"
# Each party signs a window only after cutting it from its own feed and recomputing the Poseidon input hash.
# The relay holds no attester key: it asks them over HTTP. Demo keys are Anvil's public dev accounts 2-4.
# A party runs one service per market it attests (its breaker, its feed): a, b and c for btc, a and b for eth.
pids=()
n=0
for service in btc:a:2 btc:b:3 btc:c:4 eth:a:2 eth:b:3; do
  IFS=: read -r market name account <<< "$service"
  home="$out/attesters/$market-$name"
  mkdir -p "$home/feed"
  python3 -c 'import sys; from sentinel.chain.keys import demo_key; print(demo_key(int(sys.argv[1])).secret)' \
    "$account" > "$home/key"
  chmod 600 "$home/key"
  env -u SENTINEL_ATTESTER_KEYS sentinel attester serve --market "$market" --data "$home/feed" --keyfile "$home/key" \
    --port "$((attester_port + n))" --rpc "$chain_rpc" --record "$home/signed.sqlite" 2> "$home/attester.log" &
  pids+=($!)
  n=$((n + 1))
done
stop_all() {
  kill -TERM ${relay_pid:-} "${pids[@]}" 2>/dev/null || true
  wait ${relay_pid:-} "${pids[@]}" 2>/dev/null || true
  sentinel chain down >/dev/null 2>&1 || true
}
trap stop_all EXIT
for port in $(seq "$attester_port" $((attester_port + 4))); do
  python3 - "$port" <<'PY'
import sys, time, urllib.error, urllib.request
for _ in range(120):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # answering; not ready until its feed has rows
    except OSError:
        time.sleep(0.5)
sys.exit(f"demo: attester on port {sys.argv[1]} did not start")
PY
done
echo "btc: parties a, b, c serving on ports $attester_port..$((attester_port + 2)); eth: a, b on the next two"

step "15. one relay follows both markets in risk mode: windows that can move a breaker proved, attested, submitted"
# Anvil mines only when asked, so one confirmation (the inclusion block) here; the default is 2.
# relay.report = risk (the default): each window is float-scored; a calm one is screened (kept in the queue with
# its score and why), one near the trip threshold, in a streak or while tripped is proved and sent. A heartbeat
# every 10 windows reports a calm one too (btc's first window is one: party c refuses it, its copy disagrees).
# One process, a thread per market, one queue, one signer (its nonces shared), each market's own attesters.
env -u SENTINEL_ATTESTER_KEYS SENTINEL_RELAY__REPORT=risk SENTINEL_RELAY__HEARTBEAT_WINDOWS=10 \
  sentinel relay run --db "$queue" --metrics-port "$metrics_port" --confirmations 1 2> "$out/relay.log" &
relay_pid=$!
# The demo compresses time: 1 row (a minute of market time) every 5 s, and the local chain's clock follows
# each row (--chain-clock). A live feed needs no warping. The breaker counts runs of consecutive windows, so
# the relay takes windows in order; a row every 5 s is about what one proof and one transaction take here,
# so it keeps up even when every window must be proved. The replay starts 20 rows before onset, with a window's worth of earlier rows
# written at once, and stops 5 rows after the price bottom. Every row reaches each party's copy just before
# the relay's feed; party c's copy comes from the file with the altered row. eth's rows go with them.
copies=(--copy "$out/attesters/btc-a/feed/market_depth.csv" --copy "$out/attesters/btc-b/feed/market_depth.csv"
        --copy "$out/attesters/btc-c/feed/market_depth.csv=$out/crash-attester-c.csv"
        --copy "$out/attesters/eth-a/feed/market_depth.csv=$out/calm.csv"
        --copy "$out/attesters/eth-b/feed/market_depth.csv=$out/calm.csv"
        --copy "$out/relay/eth/market_depth.csv=$out/calm.csv")
sentinel data replay "$out/crash.csv" --to "$feed" --rows "$((onset - 20)):$onset" --prefill 50 \
  --rows-per-second 0.2 --chain-clock "${copies[@]}"
echo "-- btc's attester b goes down mid-run (SIGTERM); the relay goes on with a and c:"
kill -TERM "${pids[1]}" && wait "${pids[1]}" || true
sentinel data replay "$out/crash.csv" --to "$feed" --rows "$((onset + 1)):$((bottom + 5))" \
  --rows-per-second 0.2 --chain-clock "${copies[@]}"
feed_lines=$(wc -l < "$feed")
# While the breaker is tripped the relay proves 4 consecutive windows in one proof and one submitBatch (a quarter
# of the gas each); a run shorter than that waits for the rest until 4 cadences after its first window.
echo "-- the feed ends; 6 minutes pass on the chain (a live chain's clock would), so windows still waiting for a"
echo "   batch are proved alone:"
sentinel chain warp --to "$(python3 -c 'import sys; from datetime import datetime
print(int(datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp()) + 360)' "$(tail -n1 "$feed" | cut -d, -f1)")"
for _ in $(seq 1 120); do  # wait (deadline 4 min) until the last row's window is queued and every window is final
  if sentinel relay status --db "$queue" --json | python3 -c 'import json, sys
d = json.load(sys.stdin)["markets"]
btc = d["btc"]["windows"]
sys.exit(0 if all(m["all_accounted"] for m in d.values()) and btc and btc[-1]["end_line"] == int(sys.argv[1]) else 1)' \
    "$feed_lines"; then
    break
  fi
  sleep 2
done
echo "-- /healthz:"
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' \
  "http://127.0.0.1:$metrics_port/healthz"
echo "-- /metrics (excerpt):"
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://127.0.0.1:$metrics_port/metrics" \
  | grep -E '^sentinel_relay_(windows|last_score|breaker_tripped|rpc_errors_total|prove_seconds_count|prove_seconds_sum)\{'
echo "-- what btc's parties a and c signed and refused (their /metrics):"
for n in 0 2; do
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$((attester_port + n))/metrics" | grep -E '^sentinel_attester_(signed_total|refused_total)' \
    | sed "s/^/  $([ $n = 0 ] && echo a || echo c): /"
done
kill -TERM $relay_pid && wait $relay_pid
kill -TERM "${pids[0]}" "${pids[2]}" "${pids[3]}" "${pids[4]}" && wait "${pids[0]}" "${pids[2]}" "${pids[3]}" "${pids[4]}" || true
relay_pid=
trap 'sentinel chain down >/dev/null 2>&1 || true' EXIT
echo "-- relay log (events):"
grep -E 'event=(proved|proved_batch|held|attested|confirmed|rejected|stopped)' "$out/relay.log" | sed 's/^[^ ]* [^ ]* [A-Z]* sentinel.relay //'
echo "-- the relay's record of refusals and outages (first of each):"
grep -m1 'event=attester_refused' "$out/relay.log" | sed 's/^[^ ]* [^ ]* [A-Z]* sentinel.relay //' || true
grep -m1 'event=attester_unavailable' "$out/relay.log" | sed 's/^[^ ]* [^ ]* [A-Z]* sentinel.relay //' || true
if ! grep -q 'event=attester_refused.*HTTP 409' "$out/relay.log"; then
  echo "demo: btc's attester c did not refuse the window with its altered row" >&2; exit 1
fi

step "16. btc's breaker tripped on chain before the price bottom, eth's stayed open; every window is accounted for"
sentinel chain status
sentinel relay status --db "$queue"
sentinel chain status --json > "$out/chain_status.json"
sentinel relay status --db "$queue" --json > "$out/relay_status.json"
python3 - "$out/chain_status.json" "$out/relay_status.json" "$bottom_ts" <<'PY'
import json, sys
from datetime import datetime
chain, markets, bottom = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["markets"], sys.argv[3]
bottom_unix = datetime.fromisoformat(bottom.replace("Z", "+00:00")).timestamp()
breaker, relay = chain["markets"]["btc"]["breaker"], markets["btc"]
if not breaker["tripped"]:
    sys.exit("demo: the relay did not trip btc's breaker")
if chain["markets"]["eth"]["breaker"]["tripped"]:
    sys.exit("demo: eth's breaker tripped on a calm feed")
unfinished = {name: m["unfinished"] for name, m in markets.items() if not m["all_accounted"]}
if unfinished:
    sys.exit(f"demo: relay windows not final: {unfinished}")
lead = bottom_unix - breaker["tripped_at"]
if lead <= 0:
    sys.exit(f"demo: the breaker tripped {-lead:.0f} s of market time AFTER the price bottom")
counts = relay["counts"]
if not counts["screened"]:
    sys.exit("demo: risk mode screened no window")
print(f"btc tripped at chain time {breaker['tripped_at']}, {lead / 60:.0f} market minutes before the price bottom "
      f"({bottom}); windows: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
print(f"btc, risk mode: {relay['total']} windows, {counts['screened']} screened (calm), "
      f"{relay['total'] - counts['screened'] - counts['skipped']} proved, {counts['confirmed']} confirmed in "
      f"{relay['transactions']} transactions (while tripped, 4 windows per proof and transaction)")
eth = markets["eth"]
print(f"eth, risk mode: {eth['total']} windows, {eth['counts']['screened']} screened, {eth['counts']['confirmed']} "
      "confirmed (heartbeats); its breaker stayed open")
PY

step "17. btc's vault refuses a withdrawal while its breaker is tripped (expected to fail); eth's vault pays out"
if sentinel vault withdraw 10 --market btc; then
  echo "demo: btc's vault allowed a withdrawal while its breaker was tripped" >&2; exit 1
fi
sentinel vault withdraw 10 --market eth

step "18. audit each market from the chain and the published artifacts alone (breakers from deployments.json)"
# Exit 0 only if clean: windows never reported (the gap before the crash) are notices, not failures.
sentinel audit --market btc --data "$out/scenarios.csv" --data "$out/crash.csv" --html "$out/audit.html"
sentinel audit --market eth --data "$out/calm.csv"

step "19. stop the local chain"
sentinel chain down
trap - EXIT

printf '\ndemo: done (artifacts in %s)\n' "$out"
