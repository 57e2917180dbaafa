"""Episode-wise splits, labelled windows and per-episode traces (pure).

Splits are by episode, stratified by family, so no window, and no overlapping
pair of windows, is shared between train, validation and test. One scenario
family is held out of training and validation entirely and evaluated on its
own, to show how the detector does on a kind of crash it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentinel.data import schema
from sentinel.data.validate import MarketData
from sentinel.data.windows import cut_windows, valid_end_rows
from sentinel.errors import ModelError
from sentinel.model.labels import crash_events, row_labels
from sentinel.model.policy import EpisodeTrace


@dataclass(frozen=True)
class Split:
    """Episode ids of each part."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    holdout: tuple[int, ...]
    holdout_family: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "train": len(self.train), "val": len(self.val), "test": len(self.test),
            "holdout": len(self.holdout), "holdout_family": self.holdout_family,
        }


def split_episodes(
    data: MarketData,
    seed: int,
    holdout_family: str | None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Split:
    """Stratified episode split; ``holdout_family`` episodes go only to ``holdout``."""
    frame = data.frame
    if holdout_family is not None and holdout_family not in schema.FAMILIES:
        raise ModelError(f"unknown holdout family '{holdout_family}' (known: {', '.join(schema.FAMILIES)})")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ModelError("val and test fractions must be in (0, 1) and sum to less than 1")
    per_episode = frame.drop_duplicates(schema.EPISODE)[[schema.EPISODE, schema.FAMILY]]
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    holdout: list[int] = []
    for family in schema.FAMILIES:
        eps = per_episode.loc[per_episode[schema.FAMILY] == family, schema.EPISODE].to_numpy()
        if family == holdout_family:
            holdout.extend(int(e) for e in eps)
            continue
        if not len(eps):  # a family the file does not have (e.g. the ranges space's negatives in classic data)
            continue
        eps = rng.permutation(eps)
        n_val = round(val_fraction * len(eps))
        n_test = round(test_fraction * len(eps))
        val.extend(int(e) for e in eps[:n_val])
        test.extend(int(e) for e in eps[n_val : n_val + n_test])
        train.extend(int(e) for e in eps[n_val + n_test :])
    if not train or not val or not test:
        raise ModelError(
            f"{data.source or '<data>'}: too few episodes to split "
            f"(train {len(train)}, val {len(val)}, test {len(test)}); generate more"
        )
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)), tuple(sorted(holdout)),
                 holdout_family)


@dataclass(frozen=True)
class LabeledWindows:
    """Windows of some episodes with their labels: x (n, W, 4), y (n,), episode (n,), end_rows (n,)."""

    x: np.ndarray
    y: np.ndarray
    episode: np.ndarray
    end_rows: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def labeled_windows(data: MarketData, episodes: tuple[int, ...], size: int, horizon: int) -> LabeledWindows:
    """Every complete window inside ``episodes``, with its forecast label."""
    ends = valid_end_rows(data, size)
    episode = data.frame[schema.EPISODE].to_numpy()
    ends = ends[np.isin(episode[ends], np.asarray(episodes))]
    windows = cut_windows(data, size, ends)
    labels = row_labels(data, horizon)
    return LabeledWindows(windows.x, labels[ends].astype(np.float32), episode[ends], ends)


def episode_traces(data: MarketData, windows: LabeledWindows, scores: np.ndarray) -> list[EpisodeTrace]:
    """Group scored windows by episode and attach each episode's crash, if any."""
    frame = data.frame
    phase = frame[schema.PHASE].to_numpy()
    family = frame[schema.FAMILY].to_numpy()
    price = frame[schema.MID_PRICE].to_numpy()
    events = {e.episode: e for e in crash_events(data)}
    traces: list[EpisodeTrace] = []
    for ep in np.unique(windows.episode):
        mask = windows.episode == ep
        rows = windows.end_rows[mask]
        order = np.argsort(rows)
        rows = rows[order]
        event = events.get(int(ep))
        traces.append(
            EpisodeTrace(
                rows=rows,
                scores=np.asarray(scores)[mask][order],
                healthy_rows=int(np.isin(phase[rows], schema.HEALTHY_PHASES).sum()),
                family=str(family[rows[0]]),
                onset=event.onset if event else None,
                bottom=event.bottom if event else None,
                end=event.end if event else None,
                price_before=float(price[event.onset - 1]) if event else None,
                prices=price[rows],
            )
        )
    return traces
