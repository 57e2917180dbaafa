"""Shadow scoring in the relay: candidate model versions float-score every window beside production, no proofs.

``lifecycle.shadow`` names the candidates (version ids or prefixes, resolved
among :func:`sentinel.versions.known_versions` when the relay starts: an
unknown one stops it there). Each window the relay decides on (screened,
proved alone or in a batch, in every report mode) is scored with each
candidate's ONNX model (one onnxruntime session per version) and one row per
(market, window, version) goes in the queue's ``shadow_scores`` table with
production's float score of the same window and the version production was
then: the relay's current artifacts, read at each window (a verifier upgrade
moves them). Windows skipped as too old are not scored: nothing was decided
on them. A candidate that fails to load or score is logged
(``event=shadow_failed``) and the relay goes on: shadow scores never stop
a report. ``sentinel shadow report`` reads the table
(:mod:`sentinel.lifecycle.shadow`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.artifacts import ArtifactLayout, sha256_file
from sentinel.config import SentinelConfig
from sentinel.errors import ModelError
from sentinel.relay.queue import Queue, ShadowRow
from sentinel.versions import Version, find_version, known_versions, version_id


def shadow_versions(config: SentinelConfig, layout: ArtifactLayout) -> list[Version]:
    """The versions ``lifecycle.shadow`` names, each once (ConfigError naming an unknown or ambiguous one)."""
    if not config.lifecycle.shadow:
        return []
    known = known_versions(config, layout)
    found: dict[str, Version] = {}
    for wanted in config.lifecycle.shadow:
        version = find_version(known, wanted)
        found.setdefault(version.id, version)
    return list(found.values())


def window_of(layout: ArtifactLayout) -> int:
    """Rows per window of the model in ``layout`` (its card's ``config.window``); ModelError if it cannot say."""
    try:
        card = json.loads(layout.model_card.read_text(encoding="utf-8"))
        return int(card["config"]["window"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{layout.model_card}: no model window in the card ({exc})") from exc


class ProductionVersion:
    """The version id of an artifact set's ONNX model, hashed again whenever the file (or the set) changes."""

    def __init__(self) -> None:
        self._seen: tuple[Path, int, int] | None = None
        self._id = ""

    def __call__(self, layout: ArtifactLayout) -> str:
        onnx = layout.onnx_model
        stat = onnx.stat()
        key = (onnx.resolve(), stat.st_mtime_ns, stat.st_size)
        if key != self._seen:
            self._id, self._seen = version_id(sha256_file(onnx)), key
        return self._id


class ShadowScorer:
    """One market's shadow scoring: records each candidate's float score of a window, once per (window, version)."""

    def __init__(self, versions: list[Version], queue: Queue, log: Any, metrics: Any, clock: Callable[[], float]
                 ) -> None:
        self.versions = versions
        self.queue = queue
        self.log = log
        self.metrics = metrics  #: the market's metrics view (its ``shadow_score`` gauge)
        self.clock = clock
        self._scorers: dict[str, Any] = {}
        self._windows: dict[str, int] = {}
        self.production_version = ProductionVersion()

    def _scorer(self, version: Version) -> tuple[Any, int]:
        """The version's onnxruntime session and window, loaded on first use (a failed load is tried again at the
        next window)."""
        if version.id not in self._scorers:
            from sentinel.model.export import OnnxScorer

            self._windows[version.id] = window_of(version.layout)
            self._scorers[version.id] = OnnxScorer(version.layout.onnx_model)
        return self._scorers[version.id], self._windows[version.id]

    def score(self, window_id: int, end_unix: int, market: Any, production: ArtifactLayout,
              production_score: Callable[[], float]) -> int:
        """Score window ``window_id`` (``market``: its rows, the newest ending it) with every candidate that has not
        scored it yet and record the rows; ``production`` is the relay's current artifact set and
        ``production_score`` its float score of the window (computed only if a row is written). Returns the rows
        added; never raises (a failure is logged)."""
        todo = [v for v in self.versions if v.id not in self.queue.shadowed(window_id)]
        if not todo:
            return 0
        try:
            prod_version, prod_score = self.production_version(production), float(production_score())
        except Exception as exc:  # noqa: BLE001 - shadow scoring never stops the relay
            self.log.error("event=shadow_failed window=%d version=production error=%r", window_id, str(exc))
            return 0
        features = market.features()
        rows = []
        for version in todo:
            try:
                scorer, window = self._scorer(version)
                if len(features) < window:
                    raise ModelError(f"the relay holds {len(features)} rows of window {window_id}, the model "
                                     f"needs {window}")
                score = float(scorer(features[None, -window:])[0])
            except Exception as exc:  # noqa: BLE001 - a candidate's failure is its own, never the relay's
                self.log.error("event=shadow_failed window=%d version=%s error=%r", window_id, version.id, str(exc))
                continue
            rows.append(ShadowRow(window_id, version.id, score, prod_version, prod_score, end_unix, self.clock()))
            self.metrics.shadow_score.labels(version=version.id).set(score)
            self.log.debug("event=shadow_scored window=%d version=%s score=%.4f production=%s "
                           "production_score=%.4f", window_id, version.id, score, prod_version, prod_score)
        if not rows:
            return 0
        try:
            return self.queue.record_shadow(rows)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is full: the relay's own writes will say so
            self.log.error("event=shadow_failed window=%d version=%s error=%r", window_id,
                           ",".join(r.version for r in rows), str(exc))
            return 0
