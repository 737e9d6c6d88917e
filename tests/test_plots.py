"""Plots a researcher can trust: bands of one sample std across seeds clipped to the metric's range,
the y axis labelled with its unit, the title naming environment and teacher, legends outside the axes;
one std convention (ddof=1) for summaries, bands and standard errors."""

import matplotlib.pyplot as plt
import numpy as np

from experiments import plotting
from experiments.runner import compare_to_baseline, seed_std


def test_band_is_clipped_to_the_metric_range():
    y = np.array([[0.0, 0.0, 30.0], [90.0, 100.0, 100.0]])  # [chunks, seeds] of % mastered
    mean, low, high = plotting.band(y, (0.0, 100.0))
    sd = np.std(y, axis=1, ddof=1)
    np.testing.assert_allclose(mean, [10.0, 290 / 3])
    np.testing.assert_allclose(low, [0.0, 290 / 3 - sd[1]])  # was 10 - 17.3 = -7.3 % mastered
    np.testing.assert_allclose(high, [10.0 + sd[0], 100.0])


def test_one_std_convention():
    x = [10.0, 20.0, 30.0]
    assert seed_std(x) == np.std(x, ddof=1) and seed_std([4.0]) == 0.0
    out = compare_to_baseline({"a": x, "b": [30.0, 40.0, 50.0]}, "a", "m")
    assert out["a/m_std"] == seed_std(x)
    np.testing.assert_allclose(out["b_minus_a_se"], np.sqrt(seed_std(x) ** 2 / 3 + seed_std(x) ** 2 / 3))


def test_curve_labels_title_and_legend_outside(tmp_path, monkeypatch):
    records = [{"env_steps": 1000 * (i + 1), "mastered_pct": [0.0, 5.0 * i]} for i in range(3)]
    figures = []
    real_savefig = plt.Figure.savefig

    def savefig(fig, *a, **k):
        figures.append(fig)
        return real_savefig(fig, *a, **k)

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    meta = {"mastered_pct": ("% of the 50 test tasks mastered", (0.0, 100.0))}
    paths = plotting.plot_curves(str(tmp_path), records, ["mastered_pct"], "env_steps",
                                 "curriculum_demo: cartpole_tasks, teacher random", meta)
    assert paths == [str(tmp_path / "mastered_pct.png")]
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == "% of the 50 test tasks mastered" and "environment steps" in ax.get_xlabel()
    assert "cartpole_tasks" in ax.get_title() and "random" in ax.get_title()
    assert ax.get_ylim()[0] >= -3.01 and ax.get_ylim()[1] <= 103.01
    legend = ax.get_legend()
    figures[0].canvas.draw()
    box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes_box.x1  # beside the axes, never over a curve
