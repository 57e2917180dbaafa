"""``sentinel train | evaluate | export | score | onboard``: the risk model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sentinel.cli.common import FAMILY_HELP, App, emit_json, family_names, feed_option, progress

_DATA_HELP = "Labelled scenarios CSV  [default: regenerate the card's/config's seeded scenarios]"


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _table(evaluation: dict[str, Any]) -> list[str]:
    lines = []
    family = evaluation["split"]["holdout_family"]
    for part, title in (("test", "held-out test episodes"),
                        ("holdout_family", f"held-out family ({family}), never trained on")):
        if part not in next(iter(evaluation["detectors"].values())):
            continue
        lines.append(f"{title}:")
        lines.append(f"  {'detector':<16} {'recall':>7} {'events':>7} {'lead rows':>9} {'after onset':>11} "
                     f"{'drawdown':>9} {'FT/10k':>7} {'PR-AUC':>7} {'ROC-AUC':>7}")
        for name, res in evaluation["detectors"].items():
            p = res[part]
            lines.append(
                f"  {name:<16} {_fmt(p['event_recall']):>7} {p['detected']:>3}/{p['events']:<3} "
                f"{_fmt(p['median_lead_rows'], '.0f'):>9} {_fmt(p['median_rows_after_onset'], '.0f'):>11} "
                f"{_fmt(p['median_drawdown_at_trip'] and 100 * p['median_drawdown_at_trip'], '.1f') + '%':>9} "
                f"{_fmt(p['false_trips_per_10k']):>7} {_fmt(p['pr_auc'], '.3f'):>7} {_fmt(p['roc_auc'], '.3f'):>7}"
            )
        verdict = evaluation["verdict"].get(part)
        if verdict:
            lines.append("  LSTM beats every baseline on lead time (all within the false-trip budget): "
                         + ("yes" if verdict["beats_all_baselines"] else "NO"))
            lines.extend(f"    {d}" for d in verdict["details"])
    return lines


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--seed", type=int, default=None, help="Split/initialisation/shuffling seed  [default: model.seed]")
@click.option("--epochs", type=int, default=None, help="Maximum epochs  [default: model.epochs]")
@click.option("--units", type=int, default=None, help="LSTM units  [default: model.units]")
@click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON.")
@click.pass_obj
def train(app: App, data_path: Path | None, seed: int | None, epochs: int | None, units: int | None,
          as_json: bool) -> None:
    """Train the LSTM, evaluate it beside the baselines, export ONNX with parity, write the card and plots."""
    from sentinel.model.pipeline import run_training

    flags = {"model.seed": seed, "model.epochs": epochs, "model.units": units}
    # a flag not given must not mask the same setting from --set, the environment or sentinel.toml
    config = app.config(**{key: value for key, value in flags.items() if value is not None})

    def progress(stage: str, epoch: int, total: int, logs: dict[str, float]) -> None:
        click.echo(
            f"{stage} epoch {epoch:>3}/{total}: loss {logs.get('loss', float('nan')):.4f} "
            f"val_loss {logs.get('val_loss', float('nan')):.4f} val_pr_auc {logs.get('val_pr_auc', float('nan')):.3f}",
            err=True,
        )

    report = run_training(app.layout, config, data_path, progress)
    if as_json:
        emit_json(report.to_dict())
        return
    card = report.card
    layout = app.layout
    click.echo(f"trained {card['model']['architecture']}: {card['model']['parameters']} parameters, "
               f"best epoch {card['training']['best_epoch']}/{card['training']['epochs_run']}, {report.seconds:.0f} s")
    click.echo(f"trip policy: {card['trip_policy']}")
    click.echo(f"ONNX parity over {card['export']['parity_windows']} test windows: "
               f"max |keras - onnxruntime| = {card['export']['parity_max_abs_diff']:.2e}")
    for line in _table(card["evaluation"]):
        click.echo(line)
    click.echo(f"wrote {layout.keras_model}, {layout.onnx_model}, {layout.model_card}, {layout.plots_dir}/")


def _interval(ci: list[float] | None, spec: str = ".2f") -> str:
    return "-" if ci is None else f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"


def _spread(d: dict[str, Any], scale: float = 1.0, spec: str = "g") -> str:
    if d["median"] is None:
        return "-"
    return f"{scale * d['median']:{spec}} [{scale * d['p10']:{spec}}, {scale * d['p90']:{spec}}]"


def _fresh_table(result: dict[str, Any]) -> list[str]:
    """The human form of ``evaluate --fresh``: one row per detector."""
    families = result["crash_families"]
    unseen = result["model"]["holdout_family"]
    first = next(iter(result["detectors"].values()))
    events = ", ".join(f"{f} {first['families'][f]['events']}" + (" (never trained on)" if f == unseen else "")
                       for f in families)
    lines = [
        (f"fresh episodes: {result['episodes']:,} (seed {result['seed']}, {result['date']}"
         f"{', varied markets' if result.get('vary_market') else ''}), {result['rows']:,} rows, "
         f"{result['windows']:,} windows, {result['elapsed_seconds']:.1f} s"),
        f"crash events: {events or 'none'}; healthy rows {first['false_trips']['healthy_rows']:,}",
        "policies: the model card's, nothing re-tuned; 95 % intervals: Wilson (recall), exact Poisson (false trips)",
    ]
    region = result.get("unseen_region")
    if region:
        lines.append("unseen region (never trained on): " + ", ".join(
            f"{f} {n}" for f, n in region["episodes_per_family"].items()) + " episodes; its healthy rows count in "
            "the false trips, as the hard negatives' do")
    heads = [f + ("*" if f == unseen else "") for f in families] + (["unseen region"] if region else [])
    lines.append(f"  {'detector':<16} " + " ".join(f"{h:<28}" for h in heads)
                 + f" {'false trips /10k':<22} {'lead rows: median [p10, p90]':<30} drawdown at trip, %")
    for name, r in result["detectors"].items():
        cells = []
        for f in families:
            fam = r["families"][f]
            cells.append(f"{_fmt(fam['recall'])} {_interval(fam['ci95'], '.3f')} {fam['detected']}/{fam['events']}")
        if region:
            fam = r["unseen_region"]["all_crashes"]
            cells.append(f"{_fmt(fam['recall'])} {_interval(fam['ci95'], '.3f')} {fam['detected']}/{fam['events']}")
        ft = r["false_trips"]
        lines.append(f"  {name:<16} " + " ".join(f"{c:<28}" for c in cells)
                     + f" {_fmt(ft['per_10k']) + ' ' + _interval(ft['ci95']) + ' (' + str(ft['count']) + ')':<22}"
                     + f" {_spread(r['lead_rows']):<30} {_spread(r['drawdown_at_trip'], 100, '.1f')}")
    if unseen in families:
        lines.append(f"  * {unseen}: held out of training")
    verdict = result["verdict"]
    if verdict:
        lines.append("  LSTM beats every baseline on median lead (all within the false-trip budget): "
                     + ("yes" if verdict["beats_all_baselines"] else "NO"))
        lines.extend(f"    {d}" for d in verdict["details"])
    return lines


def _real_table(result: dict[str, Any]) -> list[str]:
    """The human form of ``evaluate --real``: per feed windows, trips and scores."""
    p = result["policy"]
    lines = [(f"trip policy (model card): {p['trip_after']} scores >= {p['trip_threshold']:.3f}; "
              "every trip on a healthy feed is a false trip")]

    def line(label: str, part: dict[str, Any]) -> str:
        ft, sc = part["false_trips"], part["score"]
        scores = ("no windows" if sc["min"] is None else
                  f"score min {sc['min']:.3f} median {sc['median']:.3f} p95 {sc['p95']:.3f} max {sc['max']:.3f}")
        return (f"{label}: {part['windows']:,} windows, {ft['count']} false trips "
                f"({_fmt(ft['per_10k'])} per 10k {_interval(ft['ci95'])}); {scores}")

    for f in result["files"]:
        lines.append(line(f["file"], f))
        lines.extend(f"  trip at row {t['end_row']} ({t['window_end']}): score {t['score']:.3f}" for t in f["trips"])
    if len(result["files"]) > 1:
        lines.append(line("all feeds", result["total"]))
    return lines


_AUTO = "auto"


def _fresh_count(ctx: click.Context, param: click.Parameter, value: str | None) -> str | int | None:
    if value is None or value == _AUTO:
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a whole number of episodes") from None


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--fresh", is_flag=False, flag_value=_AUTO, default=None, metavar="[N]", callback=_fresh_count,
              help="Evaluate on N newly generated episodes, never the training data, every detector under the "
                   "card's trip policy  [default N: from the family mix, >= 100 events per family with 99 % "
                   "probability]")
@click.option("--seed", type=int, default=None,
              help="With --fresh: the episodes' seed  [default: one never used to train, in the demo or tests; "
                   "the output names it]")
@click.option("--families", multiple=True, help=f"With --fresh: {FAMILY_HELP}")
@click.option("--like", "like", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --fresh: calibrate the episodes to this real market-depth CSV's healthy statistics.")
@click.option("--unseen", "unseen", type=int, default=None, metavar="N",
              help="With --fresh: episodes of the unseen region (slowest drains, fastest flashes; never trained on), "
                   "reported apart; 0 = none  [default: >= 100 per family with 99 % probability]")
@click.option("--vary-market", "vary_market", is_flag=True,
              help="With --fresh: each episode's healthy market drawn around the profile, as model.vary_market "
                   "draws training episodes  [default: every episode the profile's own market]")
@click.option("--real", is_flag=True, help="Run the card's trip policy over the real healthy feeds FILE...: "
                                           "windows, trips (each a false trip) and scores.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@click.pass_obj
def evaluate(app: App, data_path: Path | None, fresh: str | int | None, seed: int | None, families: tuple[str, ...],
             like: Path | None, unseen: int | None, vary_market: bool, real: bool, files: tuple[Path, ...],
             as_json: bool) -> None:
    """Recompute the saved model's metrics beside every baseline (held-out episodes and family), or measure it
    at scale: on fresh episodes (--fresh) or real healthy feeds (--real FILE...)."""
    from sentinel.model.pipeline import run_evaluation, run_fresh_evaluation, run_real_evaluation

    if fresh is not None and real:
        raise click.UsageError("--fresh and --real are separate runs; choose one")
    if data_path is not None and (fresh is not None or real):
        raise click.UsageError("--data names the training scenarios; --fresh and --real never read them")
    if fresh is None and (seed is not None or families or like is not None or unseen is not None or vary_market):
        raise click.UsageError("--seed, --families, --like, --unseen and --vary-market go with --fresh")
    if files and not real:
        raise click.UsageError("feed files go with --real")
    if real and not files:
        raise click.UsageError("--real needs at least one feed FILE")
    if fresh is not None:
        episodes = None if fresh == _AUTO else int(fresh)
        result = run_fresh_evaluation(app.layout, app.config(), episodes, seed, family_names(families),
                                      None if as_json else progress, like=like, unseen_episodes=unseen,
                                      vary_market=vary_market)
        lines = _fresh_table(result)
    elif real:
        result = run_real_evaluation(app.layout, app.config(), list(files))
        lines = _real_table(result)
    else:
        result = run_evaluation(app.layout, app.config(), data_path)
        lines = _table(result)
    if as_json:
        emit_json(result)
        return
    for line in lines:
        click.echo(line)


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the export result as JSON.")
@click.pass_obj
def export(app: App, data_path: Path | None, as_json: bool) -> None:
    """Re-export the saved Keras model to ONNX, checking parity on the test windows."""
    from sentinel.model.pipeline import run_export

    result = run_export(app.layout, app.config(), data_path)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"wrote {result.path}: ops {', '.join(result.op_types)}; parity over {result.parity_windows} "
               f"windows, max |keras - onnxruntime| = {result.parity_max_abs_diff:.2e}")


@click.command()
@click.option("--window", "windows", multiple=True, default=("latest",), show_default=True,
              help="'latest', a 1-based end row, or an ISO-8601 end timestamp (repeatable).")
@feed_option("Market-depth CSV to cut the windows from.")
@click.option("--version", "version", default=None, metavar="V",
              help="Score with this known model version's ONNX model (id or prefix, `sentinel models list`)  "
                   "[default: the project's Keras model]")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"windows": [...]}, one entry per window.')
@click.pass_obj
def score(app: App, windows: tuple[str, ...], data_path: Path | None, version: str | None, as_json: bool) -> None:
    """Score windows with the float model (no proof): a quick check, or a candidate version's view of them."""
    from sentinel.data.io import read_market_csv
    from sentinel.model.pipeline import score_windows

    config, feed = app.config_and_feed(data_path)
    layout, onnx = app.layout, False
    if version is not None:
        from sentinel.versions import find_version, known_versions

        layout, onnx = find_version(known_versions(config, app.layout), version).layout, True
    results = score_windows(layout, config, read_market_csv(feed, config.data), list(windows), onnx=onnx)
    if as_json:
        emit_json({"windows": results})
        return
    for r in results:
        flag = "ABOVE trip threshold" if r["above_trip_threshold"] else "below trip threshold"
        click.echo(f"window ending row {r['end_row']} ({r['window_end']}): risk {r['score']:.4f} ({flag})")


@click.command()
@click.argument("real", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The new project directory (must not exist, or be empty).")
@click.option("--episodes", type=int, default=None, help="Training episodes  [default: model.data_episodes]")
@click.option("--fresh", type=int, default=None,
              help="Fresh evaluation episodes  [default: >= 100 events per family with 99 % probability]")
@click.option("--seed", type=int, default=None, help="The fresh episodes' seed  [default: as evaluate --fresh]")
@click.option("--json", "as_json", is_flag=True, help="Print the onboarding report as JSON.")
@click.pass_obj
def onboard(app: App, real: Path, out: Path, episodes: int | None, fresh: int | None, seed: int | None,
            as_json: bool) -> None:
    """Onboard a real market: scenarios calibrated to REAL's healthy statistics, a model trained on them, and its
    evaluation on fresh calibrated episodes and on REAL itself, in a new project (--out)."""
    from sentinel.model.onboard import onboard as run_onboard

    report = run_onboard(app.layout, app.config(), real, out, episodes=episodes, fresh=fresh, fresh_seed=seed,
                         progress=None if as_json else progress)
    if as_json:
        emit_json(report)
        return
    cal = report["calibration"]
    click.echo(f"calibrated {cal['episodes']} episodes to {real}: "
               + ("every statistic within tolerance" if cal["within_tolerance"] else "NOT every statistic within "
                  "tolerance (onboarding.json lists them)"))
    click.echo(f"trained: trip policy {report['model']['trip_policy']}, {report['model']['train_seconds']:.0f} s")
    for line in _fresh_table(report["fresh"]):
        click.echo(line)
    for line in _real_table(report["real_feed"]):
        click.echo(line)
    click.echo(f"wrote the project {out} (onboarding.json: every figure); next: "
               f"sentinel --root {out} circuit build")
