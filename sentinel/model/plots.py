"""Pictures of training and of predicted risk against the truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from sentinel.artifacts import atomic_path
from sentinel.model.policy import EpisodeTrace, TripPolicy, trip_steps


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict[str, list[float]], best_epoch: int, out: Path) -> Path:
    """Loss and PR-AUC per epoch, train and validation, best epoch marked."""
    plt = _pyplot()
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if key in history:
            ax_loss.plot(epochs, history[key], style, label=key)
    for key, style in (("pr_auc", "-"), ("val_pr_auc", "--")):
        if key in history:
            ax_auc.plot(epochs, history[key], style, label=key)
    for ax, title in ((ax_loss, "weighted binary cross-entropy"), (ax_auc, "PR-AUC")):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label=f"restored epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=8)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def plot_risk(traces: Sequence[EpisodeTrace], labels: Sequence[np.ndarray], policy: TripPolicy,
              horizon: int, out: Path, title: str) -> Path:
    """Predicted risk per window over some episodes, with truth and trips marked."""
    plt = _pyplot()
    n = max(1, len(traces))
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.3 * n), constrained_layout=True, squeeze=False)
    for ax, tr, y in zip(axes[:, 0], traces, labels, strict=False):  # no traces still draws one empty axis
        x = tr.rows - tr.rows[0]
        ax.fill_between(x, 0, 1, where=y > 0, color="#f2c14e", alpha=0.35, lw=0, step="mid",
                        label=f"label: crash within {horizon} rows or ongoing")
        if tr.onset is not None:
            ax.axvspan(tr.onset - tr.rows[0], tr.bottom - tr.rows[0], color="#d1495b", alpha=0.15,
                       label="crash: onset to bottom")
        ax.plot(x, tr.scores, color="#1d3557", lw=0.9, label="risk score")
        ax.axhline(policy.trip_threshold, color="#d1495b", ls="--", lw=0.8, label="trip threshold")
        ax.axhline(policy.reset_threshold, color="#66a182", ls=":", lw=0.8, label="reset threshold")
        for step in trip_steps(tr.scores, policy):
            ax.axvline(x[step], color="#d1495b", lw=1.6)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(tr.family)
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("rows since the episode's first complete window (vertical red: breaker trips)")
    fig.suptitle(title)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
