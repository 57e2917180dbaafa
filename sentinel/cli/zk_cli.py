"""``sentinel circuit build``, ``sentinel prove``, ``sentinel verify``, ``sentinel bench``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sentinel.cli.common import App, emit_json, feed_option, progress, verdict, warn

if TYPE_CHECKING:
    from sentinel.config import SentinelConfig
    from sentinel.zk.build import BuildResult


def build(app: App, config: SentinelConfig, srs: Path | None = None, force: bool = False) -> BuildResult:
    """Build the circuit (or confirm it is up to date); warns on stderr when the SRS is test-only."""
    from sentinel.zk.build import build_circuit

    result = build_circuit(app.layout, config, srs=srs, force=force, progress=progress)
    if result.manifest["srs"]["warning"]:
        warn(result.manifest["srs"]["warning"])
    return result


@click.group()
def circuit() -> None:
    """The EZKL circuit: build it."""


@circuit.command(name="build")
@click.option("--srs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ceremony SRS file (default: a locally generated TEST-ONLY SRS).")
@click.option("--force", is_flag=True, help="Rebuild even when the inputs are unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the build result and manifest as JSON.")
@click.pass_obj
def build_cmd(app: App, srs: Path | None, force: bool, as_json: bool) -> None:
    """Settings, calibration, compile, SRS, setup, fidelity check, Solidity verifier, manifest."""
    result = build(app, app.config(), srs, force)
    m = result.manifest
    if as_json:
        emit_json(result.to_dict())
        return
    c = m["circuit"]
    if result.skipped:
        click.echo(f"circuit up to date (inputs unchanged): {app.layout.circuit_manifest}")
    click.echo(f"logrows {c['logrows']} ({c['num_rows']} rows used), scales input {c['input_scale']} / "
               f"params {c['param_scale']}, {c['num_inner_cols']} inner columns, check mode {c['check_mode']}")
    click.echo(f"instances: {m['instances']['description']}")
    f = m["fidelity"]
    click.echo(f"fidelity over {f['windows']} test windows: max |circuit - float| {f['max_abs_error']:.4f}, "
               f"mean {f['mean_abs_error']:.4f}")
    click.echo(f"verifier: {m['verifier_runtime_bytes']} bytes of runtime code (solc {m['versions']['solc']}); "
               f"proving key {m['pk_bytes'] / 1e6:.0f} MB (not committed)")
    if not result.skipped:
        click.echo("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    if result.batch is None:
        click.echo("batch circuit: none (circuit.batch_windows = 0)")
        return
    b, bc = result.batch.manifest, result.batch.manifest["circuit"]
    state = "up to date" if result.batch.skipped else "built"
    click.echo(f"batch circuit ({state}): {b['windows_per_proof']} windows per proof, logrows {bc['logrows']} "
               f"({bc['num_rows']} rows used), verifier {b['verifier_runtime_bytes']} bytes, proving key "
               f"{b['pk_bytes'] / 1e6:.0f} MB: {app.layout.batch().circuit_manifest}")
    click.echo(f"batch instances: {b['instances']['description']}")
    if not result.batch.skipped:
        click.echo("batch seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.batch.seconds.items()))


@click.command()
@click.option("--window", "windows", multiple=True, default=None,
              help="'latest', a 1-based end row, or an ISO-8601 end timestamp (repeatable).  [default: latest]")
@click.option("--all", "prove_all", is_flag=True, help="Prove every window ending between --from and --to.")
@click.option("--from", "first", default=None, help="With --all: first end row or timestamp.")
@click.option("--to", "last", default=None, help="With --all: last end row or timestamp.")
@feed_option("Market-depth CSV (validated first).")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"bundles": [...]}, one entry per window.')
@click.pass_obj
def prove(app: App, windows: tuple[str, ...], prove_all: bool, first: str | None, last: str | None,
          data_path: Path | None, as_json: bool) -> None:
    """Prove windows: validate data, cut the window, witness, prove, write a bundle under proofs/.

    With no circuit built yet (a fresh clone: circuits/ is built locally), the circuit is built first,
    as `sentinel circuit build` does.
    """
    from sentinel.data.io import read_market_csv
    from sentinel.data.windows import resolve_window
    from sentinel.zk.prove import Prover

    if prove_all and windows:
        raise click.UsageError("--all and --window are exclusive")
    if (first or last) and not prove_all:
        raise click.UsageError("--from/--to need --all")
    config, feed = app.config_and_feed(data_path)
    market = read_market_csv(feed, config.data)
    if not app.layout.circuit_manifest.exists():
        progress("circuit", f"no circuit built under {app.layout.circuits_dir} yet: building it first, "
                            "once (what `sentinel circuit build` does)")
        build(app, config)
    prover = Prover(app.layout, config, progress=progress)
    if prove_all:
        lo = resolve_window(market, first or str(prover.window), prover.window)
        hi = resolve_window(market, last or "latest", prover.window)
        if hi < lo:
            raise click.UsageError(f"--to (row {hi + 1}) is before --from (row {lo + 1})")
        ends = list(range(lo, hi + 1))
    else:
        ends = [resolve_window(market, spec, prover.window) for spec in (windows or ("latest",))]
    results = []
    for i, end in enumerate(ends):
        result = prover.prove_end_row(market, end)
        results.append(result)
        if not as_json:
            click.echo(f"window {result.window_id} (ends {result.window_end}): score {result.score:.4f} "
                       f"(float {result.float_score:.4f}), proved in {result.prove_seconds:.1f} s -> {result.bundle}")
        elif len(ends) > 1:
            progress("prove", f"{i + 1}/{len(ends)} window {result.window_id}")
    if as_json:
        emit_json({"bundles": [r.to_dict() for r in results]})


def newest_bundle(app: App) -> Path:
    """The newest proof bundle for the current circuit, or a CircuitError naming `sentinel prove`."""
    from sentinel.errors import CircuitError
    from sentinel.zk.manifest import load_manifest

    proofs = app.layout.proofs_dir
    if not app.layout.circuit_manifest.exists():
        raise CircuitError(f"{proofs}: no proof bundle to verify (no circuit built yet)",
                           hint="run `sentinel prove --window latest`")
    path = app.layout.newest_bundle(load_manifest(app.layout)["artifacts"]["vk"]["sha256"])
    if path is None:
        raise CircuitError(f"{proofs}: no proof bundle for the current circuit",
                           hint="run `sentinel prove --window latest`")
    return path


@verdict("every bundle valid", "a bundle is invalid")
@click.command()
@click.argument("bundles", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help='Print JSON: {"bundles": [...], "valid": whether every bundle is}.')
@click.pass_obj
def verify(app: App, bundles: tuple[Path, ...], as_json: bool) -> None:
    """Verify proof bundles off-chain (default: the newest one under proofs/ for the current circuit)."""
    from sentinel.zk.verify import verify_bundle

    if not bundles:
        bundles = (newest_bundle(app),)
        if not as_json:  # the JSON names it
            progress("verify", f"newest bundle for the current circuit: {bundles[0]}")
    outcomes = [verify_bundle(app.layout, b) for b in bundles]
    if as_json:
        emit_json({"bundles": [o.to_dict() for o in outcomes], "valid": all(o.valid for o in outcomes)})
    else:
        for o in outcomes:
            if o.valid and o.windows is not None:
                scores = ", ".join(f"{w['window_id']}: {w['score']:.4f}" for w in o.windows)
                click.echo(f"valid: {o.bundle}: windows {scores} ({o.reason})")
            elif o.valid:
                click.echo(f"valid: {o.bundle}: window {o.window_id}, score {o.score:.4f} ({o.reason})")
            else:
                click.echo(f"INVALID: {o.bundle}: {o.reason}", err=True)
    if not all(o.valid for o in outcomes):
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Feed to prove windows from  [default: a generated 4-episode feed]")
@click.option("--windows", type=int, default=10, show_default=True, help="Windows to prove in one warm process.")
@click.option("--against", type=click.Choice(["seed"]), default=None,
              help="Also build and prove the seed architecture (50x4 -> LSTM(50)) and print the ratios.")
@click.option("--seed-settings", type=click.Choice(["ezkl-default", "sentinel"]), default="ezkl-default",
              show_default=True,
              help="With --against seed: EZKL's defaults as the seed ran them (input public, UNSAFE), or "
                   "Sentinel's (input hashed, SAFE).")
@click.option("--memory-cap-gb", type=float, default=None,
              help="With --against seed: kill the seed build past this resident memory  [default: 85% of RAM]")
@click.option("--chain", "on_chain", is_flag=True,
              help="Measure gas instead: deploy and submit on a throwaway local Anvil (no proving).")
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --chain: proof bundle to submit  [default: the newest one for this circuit]")
@click.option("--relay", "relay_bench", is_flag=True,
              help="Measure the relay instead: windows confirmed per minute, row-arrival -> confirmed latency.")
@click.option("--day", "day_bench", is_flag=True,
              help="Measure a protected market-day instead: a feed with one drain crash through the relay in "
                   "'every' and in 'risk' mode (transactions, gas, proofs, trip and lead, cost at stated prices).")
@click.option("--rows", type=int, default=None,
              help="With --relay or --day: rows to replay  [default: 60 with --relay; 1440 (a day at 60 s) with --day]")
@click.option("--rows-per-second", type=float, default=0.5, show_default=True, help="With --relay: replay speed.")
@click.option("--burst", "burst_bench", is_flag=True,
              help="Measure a market-wide crash instead: --markets N feeds crashing in the same minute through one "
                   "relay on a throwaway Anvil, each market with its breaker and two attester services (confirmed).")
@click.option("--no-chain", "no_chain", is_flag=True,
              help="With --burst: the executor alone, no relay or chain (proved, not confirmed).")
@click.option("--markets", type=int, default=4, show_default=True, help="With --burst: markets.")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "ray"]), default=None,
              help="With --burst: the proving executor  [default: relay.executor]")
@click.option("--ray-address", default=None, help="With --burst --executor ray: the head's host:port  "
                                                   "[default: relay.ray_address]")
@click.option("--cadence", type=float, default=60.0, show_default=True,
              help="With --burst: wall seconds per market minute (below 60 compresses time).")
@click.option("--minutes", type=int, default=30, show_default=True,
              help="With --burst: market minutes replayed (every crash onset is minute 2).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def bench(app: App, data_path: Path | None, windows: int, against: str | None, seed_settings: str,
          memory_cap_gb: float | None, on_chain: bool, bundle_path: Path | None, relay_bench: bool, day_bench: bool,
          rows: int | None, rows_per_second: float, burst_bench: bool, markets: int, executor_kind: str | None,
          ray_address: str | None, cadence: float, minutes: int, no_chain: bool, as_json: bool) -> None:
    """Measure proving (latency, peak RSS, key and proof size, fidelity); --chain: gas and code size; --relay: relay;
    --day: the cost of a protected market-day in both reporting modes."""
    if sum((relay_bench, day_bench, burst_bench)) > 1:
        raise click.UsageError("--relay, --day and --burst are exclusive")
    if burst_bench:
        _bench_burst(app, markets, executor_kind, ray_address, cadence, minutes, not no_chain, as_json)
        return
    if day_bench:
        _bench_day(app, 1440 if rows is None else rows, as_json)
        return
    if relay_bench:
        _bench_relay(app, 60 if rows is None else rows, rows_per_second, as_json)
        return
    if on_chain:
        _bench_chain(app, bundle_path, as_json)
        return
    if bundle_path is not None:
        raise click.UsageError("--bundle needs --chain")
    if memory_cap_gb is not None and memory_cap_gb <= 0:
        raise click.BadParameter(f"must be > 0, got {memory_cap_gb:g}", param_hint="--memory-cap-gb")
    import tempfile

    from sentinel.data.io import read_market_csv, write_market_csv
    from sentinel.data.synthetic import generate
    from sentinel.data.windows import cut_windows
    from sentinel.zk.bench import bench_default, bench_seed

    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as tmp:
        if data_path is None:
            data_path = Path(tmp) / "feed.csv"
            write_market_csv(generate(4, seed=11), data_path)
        result = {"default": bench_default(app.layout, data_path, windows)}
        if against == "seed":
            market = read_market_csv(data_path)
            window = cut_windows(market, 50).x[-1].astype("float64")
            cap = int(memory_cap_gb * 1e9) if memory_cap_gb else None
            seed = bench_seed(app.layout, window, seed_settings, cap)
            result["seed"] = seed
            d = result["default"]
            result["ratios"] = {
                "prove": seed["prove_seconds"] / d["prove_seconds_median"],
                "setup": seed["setup_seconds"] / d["setup_seconds"] if d["setup_seconds"] else None,
                "pk": seed["pk_bytes"] / d["pk_bytes"],
                "peak_rss": seed["peak_rss_bytes"] / d["peak_rss_bytes_proving"],
            }
    if as_json:
        emit_json(result)
        return
    d = result["default"]
    click.echo(f"default: logrows {d['logrows']}, prove median {d['prove_seconds_median']:.2f} s, "
               f"p95 {d['prove_seconds_p95']:.2f} s over {d['windows']} windows, peak RSS "
               f"{d['peak_rss_bytes_proving'] / 1e9:.2f} GB, pk {d['pk_bytes'] / 1e6:.0f} MB, "
               f"proof {d['proof_bytes']} B, fidelity {d['fidelity_max_abs_error']:.4f}")
    if "seed" in result:
        s = result["seed"]
        click.echo(f"seed ({s['settings']} settings: input {s['input_visibility']}, {s['check_mode']}): "
                   f"logrows {s['logrows']}, setup {s['setup_seconds']:.0f} s, prove {s['prove_seconds']:.0f} s, "
                   f"pk {s['pk_bytes'] / 1e9:.1f} GB, peak RSS {s['peak_rss_bytes'] / 1e9:.1f} GB")
        click.echo("ratios (seed / default): " + ", ".join(f"{k} {v:.1f}x" for k, v in result["ratios"].items() if v))


def _bench_relay(app: App, rows: int, rows_per_second: float, as_json: bool) -> None:
    from sentinel.relay.bench import bench_relay

    if rows < 1 or rows_per_second <= 0:
        raise click.UsageError("--rows must be >= 1 and --rows-per-second > 0")
    result = bench_relay(app.layout, app.config(), rows, rows_per_second, progress=progress)
    if as_json:
        emit_json(result)
        return
    lat = result["latency_row_to_confirmed_seconds"]
    click.echo(f"relay: {result['confirmed']} windows confirmed from {result['rows']} rows at "
               f"{result['rows_per_second']:g} rows/s: {result['windows_confirmed_per_minute']} per minute; "
               f"row arrival -> confirmed median {lat['median']} s, p95 {lat['p95']} s; "
               f"prove median {result['prove_seconds_median']} s")


def _bench_burst(app: App, markets: int, executor_kind: str | None, ray_address: str | None, cadence: float,
                 minutes: int, on_chain: bool, as_json: bool) -> None:
    from sentinel.config import load_config
    from sentinel.relay.burst import bench_burst
    from sentinel.relay.burst_chain import bench_burst_chain
    from sentinel.relay.prover import _flat

    overrides = {k: v for k, v in (("relay.executor", executor_kind), ("relay.ray_address", ray_address)) if v}
    config = load_config(app.layout.root, {**_flat(app.config()), **overrides}) if overrides else app.config()
    if on_chain:
        result = bench_burst_chain(app.layout, config, markets, minutes, cadence, progress=progress)
        if as_json:
            emit_json(result)
            return
        lat = result["latency_seen_to_confirmed_wall_seconds"]
        click.echo(f"burst through the relay and chain ({result['executor']}): {result['markets']} markets x "
                   f"{result['minutes']} minutes, {result['time_compression']}")
        click.echo(f"  {result['confirmed']}/{result['windows']} windows confirmed ({result['stale']} stale, "
                   f"{result['skipped']} skipped, {result['rejected']} rejected); "
                   f"{result['windows_confirmed_per_wall_minute']} confirmed and "
                   f"{result['windows_proved_per_wall_minute']} proved per wall minute; seen -> confirmed p50 "
                   f"{lat['p50']} s, p95 {lat['p95']} s (wall)")
        click.echo(f"  tripped on chain: {result['tripped_on_chain']}/{result['markets']} markets, before the price "
                   f"bottom: {result['tripped_before_bottom']}")
        return
    result = bench_burst(app.layout, config, markets, minutes, cadence, progress=progress)
    if as_json:
        emit_json(result)
        return
    lat = result["latency_arrival_to_proved_wall_seconds"]
    click.echo(f"burst ({result['executor']}, {result['workers_count']} workers; no chain: proved, not confirmed): "
               f"{result['markets']} markets x {result['minutes']} minutes, {result['time_compression']}")
    click.echo(f"  {result['proved']}/{result['windows']} windows proved, {result['stale']} stale, "
               f"{result['errors']} errors; {result['windows_proved_per_wall_minute']} proved per wall minute; "
               f"arrival -> proved p50 {lat['p50']} s, p95 {lat['p95']} s (wall); prove median "
               f"{result['prove_seconds']['median']} s")
    click.echo(f"  tripped before the price bottom: {result['tripped_before_bottom']}/{result['markets']} markets")


def _bench_day(app: App, rows: int, as_json: bool) -> None:
    from sentinel.relay.day import bench_day

    result = bench_day(app.layout, app.config(), rows, progress=progress)
    if as_json:
        emit_json(result)
        return
    for line in day_lines(result):
        click.echo(line)


def day_lines(result: dict[str, Any]) -> list[str]:
    """``bench --day``'s result as a compact table: one column per reporting mode."""
    crash, modes, healthy, a = result["crash"], result["modes"], result["healthy_part"], result["assumptions"]
    every, risk = modes["every"], modes["risk"]

    from sentinel.relay.day import cost_text as cost
    from sentinel.relay.day import lead_text as lead
    from sentinel.relay.day import trip_text as trip

    table = [
        ("", "every", "risk"),
        ("windows", *(", ".join(f"{k} {v}" for k, v in m["windows"].items()) for m in (every, risk))),
        ("transactions", *(f"{m['transactions']:,}" for m in (every, risk))),
        ("gas, total", *(f"{m['gas_total']:,}" for m in (every, risk))),
        ("gas per market-day (scaled)", *(f"{m['gas_per_market_day_scaled']:,}" for m in (every, risk))),
        ("proofs", *(f"{m['proofs']:,}" for m in (every, risk))),
        ("proving, wall s (sum)", *(f"{m['prove_seconds_total']:,.1f}" for m in (every, risk))),
        ("prover process CPU s", *("-" if m["prover_cpu_seconds"] is None else f"{m['prover_cpu_seconds']:,.1f}"
                                   for m in (every, risk))),
        ("tripped at window (end row)", trip(every), trip(risk)),
        ("lead to the price bottom", lead(every), lead(risk)),
        ("healthy part: gas", *(f"{m['healthy_part']['gas']:,}" for m in (every, risk))),
        (f"mainnet at {a['mainnet_gwei']:g} gwei, per day", cost(every, "mainnet"), cost(risk, "mainnet")),
        (f"L2 at {a['l2_gwei']:g} gwei, per day", cost(every, "l2"), cost(risk, "l2")),
        ("wall s", *(f"{m['wall_seconds']:,.0f}" for m in (every, risk))),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    ratio = healthy["risk_over_every"]
    negatives = f"{crash['hard_negatives']} hard negative{'' if crash['hard_negatives'] == 1 else 's'}"
    head = (f"day: {result['rows']} rows, {negatives}, drain onset row "
            f"{crash['onset_row']}, price bottom row {crash['bottom_row']}")
    verdict = (f"healthy part ({healthy['windows']} windows before the onset): risk / every gas "
               f"{'-' if ratio is None else f'{ratio * 100:.2f} %'} (target <= {healthy['target'] * 100:g} %: "
               f"{'met' if healthy['within_target'] else 'NOT met'}); same trip window: "
               f"{'yes' if healthy['same_trip_window'] else 'NO'}")
    return [head, *(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}" for row in table), verdict,
            f"ETH at ${a['eth_usd']:,.0f} (assumed); {a['note']}"]


def _bench_chain(app: App, bundle_path: Path | None, as_json: bool) -> None:
    from sentinel.chain.bench import bench_chain

    result = bench_chain(app.layout, app.config(), bundle_path, progress=progress)
    if as_json:
        emit_json(result)
        return
    for name, gas in result["deploy_gas"].items():
        click.echo(f"deploy {name:16s} {gas:>10,} gas  runtime {result['runtime_bytes'][name]:>6,} bytes")
    click.echo(f"submit (verification included): {result['submit_gas']:,} gas, first report "
               f"{result['submit_gas_first_report']:,} "
               f"(target {result['submit_target_gas']:,}: {'met' if result['submit_within_target'] else 'NOT met'}); "
               f"calldata {result['submit_calldata_bytes']:,} bytes = {result['submit_calldata_gas']:,} gas")
    click.echo(f"verifier alone, own tx: {result['verifier_only_tx_gas']:,} gas; breaker overhead "
               f"{result['breaker_overhead_gas']:,} gas; proof {result['proof_bytes']:,} bytes")
