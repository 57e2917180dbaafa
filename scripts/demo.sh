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

step "9. prove the latest window and the crash window"
sentinel prove --data "$out/scenarios.csv" --window latest --window "$crash_row"
bundle=$(ls -t proofs/window-*.json | head -n 1)

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

printf '\ndemo: done (artifacts in %s)\n' "$out"
