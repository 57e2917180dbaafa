"""``sentinel train | evaluate | export | score``: the risk model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sentinel.cli.common import App, emit_json, feed_option

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

    config = app.config(**{"model.seed": seed, "model.epochs": epochs, "model.units": units})

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


@click.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@click.pass_obj
def evaluate(app: App, data_path: Path | None, as_json: bool) -> None:
    """Recompute the saved model's metrics beside every baseline (held-out episodes and family)."""
    from sentinel.model.pipeline import run_evaluation

    evaluation = run_evaluation(app.layout, app.config(), data_path)
    if as_json:
        emit_json(evaluation)
        return
    for line in _table(evaluation):
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
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"windows": [...]}, one entry per window.')
@click.pass_obj
def score(app: App, windows: tuple[str, ...], data_path: Path | None, as_json: bool) -> None:
    """Score windows with the float model (no proof): a quick check."""
    from sentinel.data.io import read_market_csv
    from sentinel.model.pipeline import score_windows

    config, feed = app.config_and_feed(data_path)
    results = score_windows(app.layout, config, read_market_csv(feed, config.data), list(windows))
    if as_json:
        emit_json({"windows": results})
        return
    for r in results:
        flag = "ABOVE trip threshold" if r["above_trip_threshold"] else "below trip threshold"
        click.echo(f"window ending row {r['end_row']} ({r['window_end']}): risk {r['score']:.4f} ({flag})")
