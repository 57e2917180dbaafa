"""Training the LSTM (TensorFlow I/O lives here; the logic it uses is pure).

Episode-wise split, normalisation fitted on training rows only, class weights
for the rare positives, early stopping on validation loss with the best
weights restored, learning-rate halving on plateau, fixed seeds and
deterministic ops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentinel.config import ModelConfig, parse_pooling
from sentinel.data.validate import MarketData
from sentinel.errors import ModelError
from sentinel.model.dataset import LabeledWindows, Split, labeled_windows
from sentinel.model.network import KerasModel

#: progress(stage, epoch, total_epochs, logs) after every epoch; stage is the activations being
#: trained ("smooth", "hard"; a warm-started hard model reports a smooth stage first).
Progress = Callable[[str, int, int, dict[str, float]], None]


@dataclass(frozen=True)
class Normalisation:
    """Constants of the model's fixed feature layer, fitted on training rows only."""

    mean: tuple[float, float, float]  #: blr, buy_volume, sell_volume
    std: tuple[float, float, float]
    price_ref: float  #: median training mid price; price moves are in % of it

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "price_ref": self.price_ref}


def fit_normalisation(train: LabeledWindows) -> Normalisation:
    """Mean and std of blr and both volumes, median price, over training rows."""
    x = train.x.reshape(-1, train.x.shape[-1]).astype(np.float64)
    std = x[:, :3].std(0)
    if np.any(std <= 0):
        raise ModelError("a feature is constant over the training rows; cannot standardise it")
    mean = x[:, :3].mean(0)
    return Normalisation(
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        price_ref=float(np.median(x[:, 3])),
    )


@dataclass
class TrainResult:
    """A trained model and how it got there."""

    model: KerasModel
    normalisation: Normalisation
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    seconds: float  #: both stages of a warm-started model
    train_windows: int
    val_windows: int
    positive_fraction: float
    parameters: int
    class_weight: dict[int, float] = field(default_factory=dict)
    #: The smooth stage a hard model started from (epochs, best epoch, best val loss, rate), or None.
    warm_start: dict[str, Any] | None = None


def deterministic_tensorflow(seed: int) -> None:
    """Seed TensorFlow and make its ops deterministic.

    TensorFlow's shuffling and op scheduling take no per-call seed, so this is
    the one place Sentinel sets global seeds, right before training.
    """
    from sentinel.model.backend import import_keras, import_tensorflow

    keras, tf = import_keras(), import_tensorflow()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def loss_weights(data: MarketData, windows: LabeledWindows, window: int, early_weight: float,
                 negative_weight: float) -> np.ndarray:
    """Per-window loss multiplier (before class weights).

    1 + ``early_weight`` for a window ending from a crash's onset through the
    first half of its fall (at least 3 rows): there a detection still leaves
    lead, and those windows are few (a flash crash has a handful). 1 +
    ``negative_weight`` for a window holding any row of a hard negative's
    event (``window`` rows wide): the false trips come from those. 1 elsewhere.
    """
    from sentinel.data import schema
    from sentinel.model.labels import crash_events

    weights = np.ones(len(windows), dtype=np.float32)
    if negative_weight > 0:
        negative = np.isin(data.frame[schema.PHASE].to_numpy(), schema.HARD_NEGATIVE_FAMILIES).astype(np.int64)
        # rows r - window + 1 .. r of the window ending at r hold a negative row <=> the running count rose
        count = np.concatenate([[0], np.cumsum(negative)])
        ends = windows.end_rows
        held = count[ends + 1] - count[np.maximum(ends + 1 - window, 0)] > 0
        weights[held] = 1.0 + negative_weight
    if early_weight > 0:
        for event in crash_events(data):
            last = event.onset + max(3, (event.bottom - event.onset) // 2)
            hit = (windows.episode == event.episode) & (windows.end_rows >= event.onset) & (windows.end_rows <= last)
            weights[hit] = 1.0 + early_weight
    return weights


def _fit(model: KerasModel, train: LabeledWindows, val: LabeledWindows, cfg: ModelConfig, learning_rate: float,
         class_weight: dict[int, float], stage: str,
         progress: Progress | None, sample_weight: np.ndarray | None = None) -> tuple[dict[str, list[float]], float]:
    """Fit ``model`` with the recipe (early stopping, best weights, LR halving); its history and seconds."""
    from sentinel.model.backend import import_keras
    from sentinel.model.network import logit_model

    keras = import_keras()

    # A model that ends in a hard score trains on its logit (the score's flat ends have no gradient).
    logits = logit_model(model)
    from_logits = logits is not None
    trained = model if logits is None else logits
    trained.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=from_logits),
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc", from_logits=from_logits)],
    )

    callback: Any = keras.callbacks.Callback  # a base class must be a name for mypy; keras is untyped

    class _Report(callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if progress is not None:
                progress(stage, epoch + 1, cfg.epochs, {k: float(v) for k, v in (logs or {}).items()})

    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True, verbose=0
    )
    start = time.perf_counter()
    # Class weights go into per-window weights when there are any (Keras takes one or the other).
    weighting: dict[str, Any] = {"class_weight": class_weight} if sample_weight is None else {
        "sample_weight": sample_weight * np.where(train.y > 0.5, class_weight[1], class_weight[0]).astype(np.float32)}
    history = trained.fit(
        train.x, train.y,
        validation_data=(val.x, val.y),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        **weighting,
        shuffle=True,
        verbose=0,
        callbacks=[
            stopper,
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, cfg.patience // 2)),
            _Report(),
        ],
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}, time.perf_counter() - start


def _best_epoch(history: dict[str, list[float]]) -> int:
    val_loss = history.get("val_loss", [])
    return int(np.argmin(val_loss)) + 1 if val_loss else 0


def train_lstm(data: MarketData, split: Split, cfg: ModelConfig, progress: Progress | None = None) -> TrainResult:
    """Train the risk model on ``split.train``, early-stopping on ``split.val``.

    A hard model (``cfg.activations == "hard"``) with ``cfg.finetune_learning_rate`` > 0
    trains in two stages: the smooth model of the same configuration first, then
    the hard model started from it (:func:`~sentinel.model.network.hard_from_smooth`)
    and fine-tuned at that rate. Both stages use the same seed, data and recipe.
    """
    from sentinel.model.network import build_model, hard_from_smooth

    train = labeled_windows(data, split.train, cfg.window, cfg.horizon)
    val = labeled_windows(data, split.val, cfg.window, cfg.horizon)
    positives = float(train.y.mean())
    if positives in {0, 1}:
        raise ModelError("training windows are all one class; generate more (or different) episodes")
    norm = fit_normalisation(train)
    # Balanced weights: positives are rare (a few percent of windows).
    class_weight = {0: 0.5 / (1.0 - positives), 1: 0.5 / positives}
    pooling = parse_pooling(cfg.pooling, cfg.window)

    def build(activations: str) -> KerasModel:
        # The weight bound sizes a smooth model's lookup table; a hard model has none to size.
        bounded = activations == "smooth"
        return build_model(pooling, cfg.units, np.array(norm.mean), np.array(norm.std), norm.price_ref, cfg.seed,
                           cfg.feature_clip, cfg.preactivation_bound if bounded else 0.0,
                           cfg.output_bound if bounded else 0.0, activations)

    sample_weight = (loss_weights(data, train, cfg.window, cfg.early_weight, cfg.negative_weight)
                     if cfg.early_weight > 0 or cfg.negative_weight > 0 else None)
    warm = cfg.activations == "hard" and cfg.finetune_learning_rate > 0
    deterministic_tensorflow(cfg.seed)
    stage = "smooth" if warm else cfg.activations
    model = build(stage)
    history, seconds = _fit(model, train, val, cfg, cfg.learning_rate, class_weight, stage, progress, sample_weight)
    warm_start = None
    if warm:
        warm_start = {"epochs_run": len(history["val_loss"]), "best_epoch": _best_epoch(history),
                      "best_val_loss": min(history["val_loss"]), "learning_rate": cfg.learning_rate}
        deterministic_tensorflow(cfg.seed)
        smooth, model = model, build("hard")
        hard_from_smooth(smooth, model)
        history, more = _fit(model, train, val, cfg, cfg.finetune_learning_rate, class_weight, "hard", progress,
                             sample_weight)
        seconds += more
    return TrainResult(
        model=model,
        normalisation=norm,
        history=history,
        epochs_run=len(history.get("val_loss", [])),
        best_epoch=_best_epoch(history),
        seconds=seconds,
        train_windows=len(train),
        val_windows=len(val),
        positive_fraction=positives,
        parameters=int(model.count_params()),
        class_weight=class_weight,
        warm_start=warm_start,
    )


class KerasDetector:
    """The trained model behind the baselines' :class:`Detector` interface."""

    name = "lstm"
    tuned = True

    def __init__(self, model: KerasModel) -> None:
        self.model = model

    def fit(self, train: LabeledWindows) -> None:
        return None

    def score(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.model.predict(x, batch_size=4096, verbose=0))[:, 0].astype(np.float64)
