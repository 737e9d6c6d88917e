"""Figures of a context distribution over the context box: how a curriculum moves (SPDL's picture).

``plot_context_evolution`` draws, for one or several teachers, the distribution's mean and one
standard deviation (an axis-aligned ellipse, averaged over seeds) at each logged time, coloured from
early (dark) to late (yellow), samples of the first seed at the start, middle and end, and the target
distribution's mean as a cross, over the first two context dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402


def _draw(ax, records: list[dict], box: Sequence[float], target: Sequence[float] | None, title: str) -> None:
    cmap = plt.get_cmap("viridis")
    n = len(records)
    for i, r in enumerate(records):
        mean = np.asarray(r["ctx_mean"], np.float64).mean(axis=0)  # over seeds
        std = np.asarray(r["ctx_std"], np.float64).mean(axis=0)
        colour = cmap(0.15 + 0.8 * i / max(n - 1, 1))
        ax.add_patch(Ellipse((mean[0], mean[1]), 2 * std[0], 2 * std[1], fill=False, color=colour, lw=1.2))
        ax.plot(mean[0], mean[1], "o", color=colour, ms=3)
    for j, marker in zip(sorted({0, n // 2, n - 1}), ("s", "^", "o")):
        pts = np.asarray(records[j].get("ctx_samples", [[]]), np.float64)
        if pts.ndim == 3 and pts.shape[-1] >= 2:
            ax.scatter(pts[0, :, 0], pts[0, :, 1], s=4, marker=marker, alpha=0.35,
                       color=cmap(0.15 + 0.8 * j / max(n - 1, 1)),
                       label=f"seed 0, {records[j]['env_steps'] / 1e3:.0f}k steps")
    if target is not None:
        ax.plot(target[0], target[1], "x", color="red", ms=9, mew=2, label="target mean")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def plot_context_evolution(
    path: str,
    runs: dict[str, list[dict]],
    box: Sequence[float],
    names: Sequence[str],
    target: Sequence[float] | None = None,
) -> str:
    """``runs[teacher]`` = the run's records (each with ``ctx_mean`` / ``ctx_std`` ``[seeds, d]``,
    optionally ``ctx_samples [seeds, m, d]`` and ``env_steps``); ``box = (x0, x1, y0, y1)``."""
    runs = {k: v for k, v in runs.items() if v and "ctx_mean" in v[0]}
    if not runs:
        return path
    cols = min(4, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (teacher, records) in zip(axes.ravel(), runs.items()):
        _draw(ax, records, box, target, teacher)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1] if len(names) > 1 else "")
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6, loc="upper left")
    fig.suptitle("context distribution: mean and 1 std over time\n(dark = early, yellow = late)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
