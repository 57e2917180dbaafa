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

step "9. prove the latest window (the crash windows are proven in step 14)"
sentinel prove --data "$out/scenarios.csv" --window latest --json > "$out/latest.json"
bundle=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bundle"])' "$out/latest.json")
latest_end=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["window_end_unix"])' "$bundle")

step "10. verify off-chain, then flip one byte of the proof (expected to fail)"
sentinel verify "$bundle"
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

step "11. a local chain: Anvil with its clock at the latest window (replaying a recorded feed), contracts deployed"
trap 'sentinel chain down >/dev/null 2>&1 || true' EXIT
sentinel chain up --fresh --timestamp $((latest_end + 60))
sentinel deploy
sentinel vault deposit 1000

step "12. attest the latest window (EIP-712, k of n attesters), submit it with its proof, read the breaker"
sentinel attest "$bundle" --data "$out/scenarios.csv"
sentinel submit "$bundle"
sentinel chain status
echo "-- the same window again is refused (expected to fail):"
if sentinel submit "$bundle"; then
  echo "demo: the breaker accepted a replayed window" >&2; exit 1
fi

step "13. a liquidity drain arrives: the feed continues with a crash scenario; pick windows the float model flags"
sentinel data generate --out "$out/crash.csv" --episodes 1 --families drain --seed 5 \
  --start "$(date -u -d "@$((latest_end + 60))" +%Y-%m-%dT%H:%M:%SZ)"
rows=$(($(wc -l < "$out/crash.csv") - 1))
# shellcheck disable=SC2046
sentinel score --data "$out/crash.csv" $(seq 50 "$rows" | sed 's/^/--window /') --json > "$out/crash_scores.json"
crash_rows=$(python3 - "$out/crash_scores.json" models/model_card.json <<'PY'
import json, sys
scores, card = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
policy = card["trip_policy"]
need, bar = policy["trip_after"], policy["trip_threshold"] + 0.005  # margin: the circuit's fidelity bound
run = []
for s in scores:
    run = run + [s] if s["score"] >= bar else []
    if len(run) == need:
        print(" ".join(str(r["end_row"]) for r in run))
        break
else:
    sys.exit(f"demo: no {need} consecutive windows score >= {bar:.4f} in the crash scenario")
PY
)
echo "windows ending at rows: $crash_rows"

step "14. prove those windows"
# shellcheck disable=SC2046
sentinel prove --data "$out/crash.csv" $(printf -- '--window %s ' $crash_rows) --json > "$out/crash_proofs.json"
crash_bundles=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d = d if isinstance(d, list) else [d]; print(" ".join(r["bundle"] for r in d))' "$out/crash_proofs.json")

step "15. the chain reaches the crash windows; attest and submit each: the breaker trips"
last_end=$(python3 -c 'import json, sys; print(max(json.load(open(p))["window_end_unix"] for p in sys.argv[1:]))' $crash_bundles)
sentinel chain warp --to $((last_end + 30))
for b in $crash_bundles; do
  sentinel attest "$b" --data "$out/crash.csv"
  sentinel submit "$b"
done
sentinel chain status

step "16. the guarded vault refuses a withdrawal while the breaker is tripped (expected to fail)"
if sentinel vault withdraw 10; then
  echo "demo: the vault allowed a withdrawal while the breaker was tripped" >&2; exit 1
fi

step "17. audit the run from the chain and the published artifacts alone (breaker address from deployments.json)"
# Exit 0 only if clean: windows never reported (the gap before the crash) are notices, not failures.
sentinel audit --data "$out/scenarios.csv" --data "$out/crash.csv" --html "$out/audit.html"

step "18. stop the local chain"
sentinel chain down
trap - EXIT

printf '\ndemo: done (artifacts in %s)\n' "$out"
