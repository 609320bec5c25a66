"""The spectrogram grid's fixed layout: every label inside the figure, none over a panel."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from stemkit.plots import spectrogram_grid

SR = 22050


def overlap(a, b) -> float:
    """Area in pixels that two bounding boxes share."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


@pytest.mark.parametrize(
    "stems,providers,mixture,title",
    [
        (["vocals", "accompaniment"], ["sourceress", "audioshake"], True, "01-sunday-drive"),
        (["vocals", "drums", "bass", "other"], ["a-long-provider-name"], True, None),
        (["vocals"], [], False, "one"),
    ],
)
def test_no_label_leaves_the_figure_or_covers_a_panel(stems, providers, mixture, title):
    # the grid is laid out in fixed margins (no layout engine at save): what a layout engine
    # would guarantee is checked here on the drawn figure, for grids of several shapes
    x = np.random.default_rng(0).normal(0, 0.1, (2, SR)).astype(np.float32)
    rows = {"reference": dict.fromkeys(stems, x)} | {p: {stems[0]: x} for p in providers}
    fig = spectrogram_grid(rows, SR, mixture=x if mixture else None, title=title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    panels = [ax for ax in fig.axes if ax.axison and ax.images]
    assert len(panels) == len(stems) + len(providers) + mixture
    boxes = {ax: ax.get_window_extent(renderer) for ax in panels}
    texts = [(fig._suptitle.get_window_extent(renderer), None)] if title else []
    for ax in fig.axes:  # the panels' and the colour bar's labels and tick labels, as drawn
        if ax.axison:
            texts += [
                (ax.xaxis.get_tightbbox(renderer), ax),
                (ax.yaxis.get_tightbbox(renderer), ax),
            ]
            if ax.get_title():
                texts.append((ax.title.get_window_extent(renderer), ax))
    for box, owner in texts:
        if box is None:
            continue
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1
        for ax, panel in boxes.items():
            assert ax is owner or overlap(box, panel) <= 1, (owner, ax)
    for a, b in itertools.combinations(boxes.values(), 2):
        assert overlap(a, b) <= 1
    plt.close(fig)
