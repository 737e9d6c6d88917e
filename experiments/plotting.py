"""Plots of a run folder's records: learning curves with a band across seeds, task-distribution maps,
the score per task of an evaluation.

Bands are the mean +- one standard deviation across seeds (the sample std, ddof=1, as in
``summary.json``: ``experiments.runner.seed_std``), clipped to the metric's range where it has one (no "-5 % mastered"). Legends sit
outside the axes so that they never cover a curve.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def band(y: np.ndarray, value_range: tuple[float, float] | None, axis: int = 1):
    """``(mean, low, high)`` of ``y`` over ``axis``: mean +- one std, clipped to ``value_range``."""
    n = y.shape[axis]
    mean, std = y.mean(axis=axis), (y.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(y.mean(axis=axis)))
    low, high = mean - std, mean + std
    if value_range is not None:
        low, high = np.clip(low, *value_range), np.clip(high, *value_range)
    return mean, low, high


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)


def axis_label(step_unit: str) -> str:
    return {"env_steps": "environment steps (all envs of one seed)",
            "episodes": "episodes (one seed)"}.get(step_unit, step_unit.replace("_", " "))


def plot_curves(
    plots_dir: str, records: list[dict], curves: Sequence[str], step_unit: str, title: str,
    curve_meta: dict | None = None,
) -> list[str]:
    """One PNG per curve: mean across seeds with a band of +- one standard deviation.

    ``curve_meta[name] = (y label, (low, high) or None)`` gives the y axis its label and unit and
    the range the band is clipped to."""
    curve_meta = curve_meta or {}
    os.makedirs(plots_dir, exist_ok=True)
    paths = []
    x = np.asarray([r["env_steps"] for r in records], np.float64)
    for name in curves:
        if not records or name not in records[0]:
            continue
        y = np.asarray([r[name] for r in records], np.float64)  # [chunks, seeds]
        if y.ndim != 2:
            continue
        ylabel, value_range = curve_meta.get(name, (name, None))
        mean, low, high = band(y, value_range)
        fig, ax = plt.subplots(figsize=(7.5, 4))
        ax.plot(x, mean, color="C0", marker="o", markersize=3, label=f"mean of {y.shape[1]} seeds")
        ax.fill_between(x, low, high, color="C0", alpha=0.25, label="± 1 std across seeds")
        ax.set_xlabel(axis_label(step_unit))
        ax.set_ylabel(ylabel, fontsize=9)
        if value_range is not None:
            pad = 0.03 * (value_range[1] - value_range[0])
            ax.set_ylim(value_range[0] - pad, value_range[1] + pad)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        _legend_outside(ax)
        fig.tight_layout()
        path = os.path.join(plots_dir, f"{name.replace('/', '_')}.png")
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def plot_compare(
    path: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str, title: str,
    value_range: tuple[float, float] | None = None,
) -> None:
    """Several methods on one axis: ``curves[label] = (x [chunks], y [chunks, seeds])``; bands of one
    std across seeds clipped to ``value_range``."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (label, (x, y)) in enumerate(curves.items()):
        mean, low, high = band(y, value_range)
        ax.plot(x, mean, color=f"C{i}", marker="o", markersize=3, label=f"{label} ({y.shape[1]} seeds)")
        ax.fill_between(x, low, high, color=f"C{i}", alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel, fontsize=9)
    if value_range is not None:
        pad = 0.03 * (value_range[1] - value_range[0])
        ax.set_ylim(value_range[0] - pad, value_range[1] + pad)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.plot([], [], color="gray", alpha=0.3, linewidth=6, label="± 1 std across seeds")
    _legend_outside(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_task_maps(
    path: str,
    hists: Sequence[np.ndarray],
    labels: Sequence[str],
    extent: tuple[float, float, float, float],
    axis_names: tuple[str, str],
    title: str | None = None,
) -> None:
    """A row of 2-D histograms of sampled tasks (the paper's pictures of the curriculum over time).

    Each panel shows the % of that chunk's episodes per cell, on one colour scale from 0 shared by all
    panels, so a uniform teacher looks flat and a concentrating one stands out."""
    n = len(hists)
    shares = []
    for h in hists:
        h = np.asarray(h, np.float64)
        shares.append(100.0 * h / max(h.sum(), 1.0))
    top = max(max(float(s.max()) for s in shares), 1e-9)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.8, 2.8), squeeze=False, layout="constrained")
    image = None
    for ax, share, label in zip(axes[0], shares, labels):
        image = ax.imshow(share.T, origin="lower", extent=extent, aspect="auto", cmap="viridis",
                          vmin=0.0, vmax=top)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(axis_names[0], fontsize=8)
        ax.set_ylabel(axis_names[1], fontsize=8)
        ax.tick_params(labelsize=7)
    bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9)
    bar.set_label("% of episodes", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trial_returns(path: str, per_trial: dict[str, np.ndarray], title: str) -> str:
    """Return per trial index of a meta-episode: one line per split (mean over seeds, band of one std);
    ``per_trial[split]`` is ``[seeds, trials]``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (split, y) in enumerate(per_trial.items()):
        trials = np.arange(y.shape[1])
        mean, low, high = band(y, None, axis=0)
        ax.plot(trials, mean, marker="o", color=f"C{i}", label=f"{split} ({y.shape[0]} seeds)")
        ax.fill_between(trials, low, high, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("trial index within the meta-episode")
    ax.set_ylabel("trial return")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_task_scores(path: str, tasks: np.ndarray, scores: np.ndarray, task_space, mastery: float,
                     title: str) -> str:
    """The score of each evaluated task: a map over the first two task dimensions (1-D: score against
    the task), mastered tasks (score >= ``mastery``) ringed."""
    tasks, scores = np.asarray(tasks, np.float64), np.asarray(scores, np.float64)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    mastered = scores >= mastery
    if tasks.shape[1] >= 2:
        points = ax.scatter(tasks[:, 0], tasks[:, 1], c=scores, cmap="viridis", vmin=0.0,
                            vmax=max(1.0, float(scores.max())), s=40)
        ax.scatter(tasks[mastered, 0], tasks[mastered, 1], facecolors="none", edgecolors="red", s=90,
                   label=f"mastered (score >= {mastery:g})")
        ax.set_xlim(task_space.low[0], task_space.high[0])
        ax.set_ylim(task_space.low[1], task_space.high[1])
        ax.set_xlabel(task_space.names[0])
        ax.set_ylabel(task_space.names[1])
        fig.colorbar(points, ax=ax).set_label("score (mean over seeds)")
    else:
        order = np.argsort(tasks[:, 0])
        ax.plot(tasks[order, 0], scores[order], marker="o", label="score (mean over seeds)")
        ax.axhline(mastery, color="red", linestyle="--", label=f"mastery score {mastery:g}")
        ax.set_xlabel(task_space.names[0])
        ax.set_ylabel("score")
    ax.set_title(title, fontsize=9)
    if mastered.any() or tasks.shape[1] < 2:
        _legend_outside(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
