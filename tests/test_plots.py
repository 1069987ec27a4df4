"""Figures that stand alone: titles naming data, split, seed and metric; honest axes; legends off the data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dish.motifs.sigmoid_slope import SigmoidSlope
from dish.report.plots import comparison_figure, plot_comparison, plot_search, search_figure, search_title
from dish.store.tables import GroundTruthTable

SLOPES = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0]


@pytest.fixture
def comparison():
    """A six-slope table (val_loss lowest at slope 3), trained on every other slope, with two predictors."""
    table = GroundTruthTable([SigmoidSlope(s) for s in SLOPES], -np.array([2.3, 1.0, 0.4, 0.1, 0.3, 2.3]))
    train = table.subset([0, 2, 4])
    report = {"gt": {"path": "/somewhere/sigmoid_slope_digits.csv", "score": "val_loss"}, "seed": 2,
              "split": {"protocol": "range", "slope_min": None, "slope_max": 11.1}, "n_train": 3, "n_heldout": 3,
              "predictors": {"quadratic": {"spearman": 0.5, "excluded": None},
                             "gp": {"spearman": None, "excluded": "constant prediction"}}}
    curves = {"quadratic": -np.log(SLOPES) ** 2, "gp": np.full(6, 0.7)}
    return table, train, curves, report


def legend_texts(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def right_of_the_axes(figure) -> bool:
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = figure.axes[0].get_legend().get_window_extent(renderer)
    return legend.x0 >= figure.axes[0].get_window_extent(renderer).x1


def test_comparison_figure_names_data_split_seed_and_scores(comparison):
    figure = comparison_figure(*comparison)
    try:
        title = figure.get_suptitle()
        for part in ("sigmoid_slope_digits.csv", "val_loss", "split range (slope_max=11.1)", "seed 2",
                     "3 training / 3 held-out"):
            assert part in title, part
        assert "/somewhere" not in title
        axes = figure.axes[0]
        assert axes.get_ylabel() == "val_loss (lower = better)"
        assert "mapped to the true scores' mean and spread" in axes.get_title()
        assert legend_texts(figure) == ["true val_loss", "training motifs (3)", "held-out motifs (3)",
                                        "quadratic: held-out Spearman 0.50",
                                        "gp: no Spearman (constant prediction)"]
        training, heldout = axes.collections  # filled and hollow markers
        assert training.get_offsets()[:, 0].tolist() == [0.1, 1.0, 10.0]
        assert heldout.get_offsets()[:, 0].tolist() == [0.3, 3.0, 30.0]
        assert np.allclose(heldout.get_facecolor()[0], (1, 1, 1, 1))
        assert not np.allclose(training.get_facecolor()[0], heldout.get_facecolor()[0])
        true = axes.get_lines()[0].get_ydata()
        assert true.tolist() == [2.3, 1.0, 0.4, 0.1, 0.3, 2.3]  # the stored val_loss itself, not its negation
        gp = axes.get_lines()[2].get_ydata()
        assert np.allclose(gp, true.mean())  # a constant maps to the true mean
        assert right_of_the_axes(figure)
    finally:
        plt.close(figure)


def test_comparison_png_is_readable_by_everyone(tmp_path, comparison):
    path = tmp_path / "comparison.png"
    plot_comparison(*comparison, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert path.stat().st_mode & 0o777 == 0o644
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def search_run(seed: int, bests: list[float | None], label: str = "random") -> dict:
    curve = [{"spent": spent, "best_score": best} for spent, best in enumerate(bests)]
    return {"label": label, "seed": seed, "curve": curve, "pool_best": -0.05,
            "ground_truth": {"oracle": "table", "source": "sigmoid_slope_digits.csv", "score": "val_loss"}}


def test_search_title_names_data_score_and_seeds():
    one = {"random": [search_run(3, [-1.0, -0.5])]}
    assert search_title(one) == "search on sigmoid_slope_digits.csv by val_loss: 1 run (seed 3)"
    many = {"random": [search_run(seed, [-1.0]) for seed in range(3)],
            "surrogate:gp": [search_run(seed, [-1.0]) for seed in range(2)]}
    assert search_title(many) == "search on sigmoid_slope_digits.csv by val_loss: 2-3 seeds per strategy"
    legacy = {"random": [{"seed": 0, "curve": []}], "dish": [{"seed": 0, "curve": []}]}
    assert search_title(legacy) == "search on unnamed data: 1 seed per strategy"


def test_a_single_search_says_one_run_with_integer_ticks():
    figure = search_figure({"random": [search_run(0, [None, -1.0, -0.5])]})
    try:
        axes = figure.axes[0]
        assert legend_texts(figure) == ["random (1 run)", "best in the table"]
        assert "seed 0" in figure.get_suptitle() and axes.get_title() == ""  # no band to explain
        ticks = [tick for tick in axes.get_xticks() if 0 <= tick <= 2]
        assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks)
        assert axes.get_ylabel() == "best val_loss found (lower = better)"
        line = axes.get_lines()[0].get_ydata()
        assert np.isnan(line[0]) and line[1:].tolist() == [1.0, 0.5]  # nothing found yet: a gap, not -inf
        assert right_of_the_axes(figure)
    finally:
        plt.close(figure)


def test_a_search_that_found_nothing_says_so_on_integer_ticks():
    figure = search_figure({"random": [search_run(0, [None, None])]})
    try:
        axes = figure.axes[0]
        assert [text.get_text() for text in axes.texts] == ["no evaluation succeeded: nothing found"]
        figure.canvas.draw()
        ticks = [tick for tick in axes.get_xticks() if axes.get_xlim()[0] <= tick <= axes.get_xlim()[1]]
        assert ticks == [0, 1]
    finally:
        plt.close(figure)


def test_search_report_figure_bands_match_their_lines(tmp_path):
    runs = {"random": [search_run(seed, [-1.0, -0.5 - 0.1 * seed, -0.4][:2 + (seed == 0)]) for seed in range(3)],
            "surrogate:gp": [search_run(seed, [-1.0, -0.2, -0.1], "surrogate:gp") for seed in range(2)]}
    figure = search_figure(runs)
    try:
        axes = figure.axes[0]
        assert legend_texts(figure)[:2] == ["random (median of 3 runs)", "surrogate:gp (median of 2 runs)"]
        assert "band: its lowest to highest run" in axes.get_title()
        for line, band in zip(axes.get_lines()[:2], axes.collections, strict=True):
            assert np.allclose(band.get_facecolor()[0][:3], plt.matplotlib.colors.to_rgb(line.get_color()))
            assert band.get_facecolor()[0][3] < 0.2  # light, with a visible edge line
            assert band.get_edgecolor()[0][3] >= 0.5 and band.get_linewidth()[0] > 0
        random = axes.get_lines()[0].get_ydata()
        assert random.tolist() == [1.0, 0.6, 0.6]  # median, each run held at its last best to the longest's end
    finally:
        plt.close(figure)
    path = tmp_path / "search_report.png"
    plot_search(runs, path)
    assert path.stat().st_mode & 0o777 == 0o644
