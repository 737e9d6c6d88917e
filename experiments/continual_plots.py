"""Figures of continual runs: the performance matrix R as a heat map with the numbers in its cells, and
each task's score over the stream (mean with a band of one std across seeds)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_matrix(ax, R: np.ndarray, title: str, label: str, vmin: float | None = None,
                vmax: float | None = None, fmt: str = "{:.2f}") -> None:
    """Heat map of ``R [T, T]`` (rows: after task k; columns: task j) with every value written in."""
    T = R.shape[0]
    im = ax.imshow(R, cmap="viridis", vmin=vmin, vmax=vmax)
    lo, hi = (np.nanmin(R), np.nanmax(R)) if vmin is None else (vmin, vmax)
    for k in range(T):
        for j in range(T):
            v = R[k, j]
            bright = (v - lo) / max(hi - lo, 1e-12) > 0.6
            ax.text(j, k, fmt.format(v), ha="center", va="center", fontsize=max(5, 10 - T // 3),
                    color="black" if bright else "white")
    ax.set_xticks(range(T))
    ax.set_yticks(range(T))
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task k")
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)


def plot_heatmaps(path: str, matrices: dict[str, np.ndarray], label: str = "accuracy",
                  fmt: str = "{:.2f}", shared_scale: bool = True) -> None:
    """One heat map per name (``matrices[name]``: R averaged over seeds), side by side."""
    names = list(matrices)
    allv = np.concatenate([np.ravel(m) for m in matrices.values()])
    vmin, vmax = (float(np.nanmin(allv)), float(np.nanmax(allv))) if shared_scale else (None, None)
    T = next(iter(matrices.values())).shape[0]
    size = max(3.5, 0.55 * T + 1.5)
    fig, axes = plt.subplots(1, len(names), figsize=(size * len(names), size), squeeze=False)
    for ax, name in zip(axes[0], names):
        plot_matrix(ax, matrices[name], name, label, vmin, vmax, fmt)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_task_curves(path: str, x: np.ndarray, scores: np.ndarray, boundaries: Sequence[float],
                     xlabel: str, ylabel: str, title: str) -> None:
    """``scores [chunks, seeds, T]``: each task's score over the stream (mean +- std across seeds),
    with a dotted line at every task boundary."""
    mean, std = scores.mean(axis=1), scores.std(axis=1)
    T = scores.shape[2]
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.cm.tab10(np.arange(T) % 10)
    for j in range(T):
        ax.plot(x, mean[:, j], color=colors[j], label=f"task {j}")
        ax.fill_between(x, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=colors[j], alpha=0.15)
    for b in boundaries:
        ax.axvline(b, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2 if T > 5 else 1, loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def continual_figures(plots_dir: str, records: list[dict], title: str, score: str = "task_acc",
                      label: str = "accuracy", step_unit: str = "iteration", chunks_per_task: int = 1) -> None:
    """The run's heat map (R of the last record, mean over seeds) and the per-task curves."""
    if not records or "R" not in records[-1]:
        return
    R = np.asarray(records[-1]["R"], np.float64)  # [S, T, T]
    plot_heatmaps(os.path.join(plots_dir, "R_heatmap.png"), {f"{title}, {R.shape[0]} seeds": R.mean(axis=0)},
                  label, fmt="{:.2f}" if np.nanmax(np.abs(R)) <= 1.5 else "{:.0f}")
    scores = np.asarray([r[score] for r in records], np.float64)  # [chunks, S, T]
    x = np.asarray([r[step_unit] for r in records], np.float64)
    boundaries = x[chunks_per_task - 1:: chunks_per_task]
    plot_task_curves(os.path.join(plots_dir, "task_scores.png"), x, scores, boundaries,
                     step_unit.replace("_", " "), label, title)
