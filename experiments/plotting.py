"""Plots of a run folder's records: learning curves with a band across seeds, task-distribution maps."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(
    plots_dir: str, records: list[dict], curves: Sequence[str], step_unit: str, title: str
) -> list[str]:
    """One PNG per curve: mean across seeds with a band of +- one standard deviation."""
    os.makedirs(plots_dir, exist_ok=True)
    paths = []
    x = np.asarray([r["env_steps"] for r in records], np.float64)
    for name in curves:
        if not records or name not in records[0]:
            continue
        y = np.asarray([r[name] for r in records], np.float64)  # [chunks, seeds]
        mean, std = y.mean(axis=1), y.std(axis=1)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x, mean, color="C0", label=f"mean of {y.shape[1]} seeds")
        ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.25, label="± 1 std")
        ax.set_xlabel(step_unit.replace("_", " "))
        ax.set_ylabel(name)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        path = os.path.join(plots_dir, f"{name.replace('/', '_')}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_compare(
    path: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str, title: str
) -> None:
    """Several methods on one axis: ``curves[label] = (x [chunks], y [chunks, seeds])``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, (x, y)) in enumerate(curves.items()):
        mean, std = y.mean(axis=1), y.std(axis=1)
        ax.plot(x, mean, color=f"C{i}", label=label)
        ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_task_maps(
    path: str,
    hists: Sequence[np.ndarray],
    labels: Sequence[str],
    extent: tuple[float, float, float, float],
    axis_names: tuple[str, str],
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trial_returns(path: str, per_trial: dict[str, np.ndarray], title: str) -> str:
    """Return per trial index of a meta-episode: one line per split (mean over seeds, band of one std);
    ``per_trial[split]`` is ``[seeds, trials]``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (split, y) in enumerate(per_trial.items()):
        trials = np.arange(y.shape[1])
        mean, std = y.mean(axis=0), y.std(axis=0)
        ax.plot(trials, mean, marker="o", color=f"C{i}", label=f"{split} ({y.shape[0]} seeds)")
        ax.fill_between(trials, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("trial index within the meta-episode")
    ax.set_ylabel("trial return")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
