"""Figures: spectrogram grids, job timelines (Gantt), metric charts.

Rendered for the eye, not for the archive: spectrograms are mel-scaled, computed on a mono
downmix with a hop chosen so a panel has about as many columns as it has pixels, and drawn with
``imshow`` (one image, not a mesh of millions of quads). Colours are fixed per provider and per
stage, so every chart of a report reads the same.

Examples
--------
>>> import numpy as np
>>> from stemkit.plots import spectrogram_grid
>>> x = np.random.default_rng(0).standard_normal((1, 22050)).astype("float32")
>>> fig = spectrogram_grid({"reference": {"vocals": x}}, sr=22050)
>>> len(fig.axes) >= 1
True
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from stemkit.audio import Source

PROVIDER_COLORS = {
    "reference": "#4d4d4d",
    "mixture": "#9e9e9e",
    "sourceress": "#1f77b4",
    "audioshake": "#ff7f0e",
    "audioshake-tasks": "#d62728",
    "local": "#2ca02c",
    "loom": "#9467bd",
    "oracle": "#8c564b",
    "baseline": "#bcbd22",
}
STAGE_COLORS = {
    "upload": "#c7c7c7",
    "metadata wait": "#dbdb8d",
    "submit": "#7f7f7f",
    "formatting": "#aec7e8",
    "metadata": "#98df8a",
    "trial chunking": "#ffbb78",
    "queue wait": "#ff9896",
    "processing": "#1f77b4",
    "wait": "#c5b0d5",
    "download": "#9edae5",
    "end to end": "#e0e0e0",
}
_EXTRA = plt.get_cmap("tab10").colors
#: edge of the bars of a failed vendor attempt in the Gantt chart
FAILED_EDGE = "#d62728"


def provider_color(name: str) -> str:
    """A stable colour for a provider (known ones fixed, others from tab10 by name)."""
    if name in PROVIDER_COLORS:
        return PROVIDER_COLORS[name]
    return matplotlib.colors.to_hex(_EXTRA[sum(map(ord, name)) % len(_EXTRA)])


def mel_db(y: np.ndarray, sr: int, *, columns: int = 600, n_mels: int = 96) -> np.ndarray:
    """Mel power spectrogram in dB (ref 1.0) of the mono downmix, about ``columns`` frames wide.

    Examples
    --------
    >>> import numpy as np
    >>> mel_db(np.zeros((2, 44100), np.float32), 44100).shape[0]
    96
    """
    from stemkit.audio import ArraySource

    return mel_db_source(ArraySource(y, sr), columns=columns, n_mels=n_mels)


def mel_db_source(source: Source, *, columns: int = 600, n_mels: int = 96) -> np.ndarray:
    """:func:`mel_db` of a source read frame by frame (:mod:`stemkit.audio`): a panel of
    a 10-minute stem from its file, holding a block of samples, never the stem.

    The frames are librosa's (``librosa.feature.melspectrogram`` with ``center=True``,
    zero padding, a periodic Hann window and librosa's Slaney mel filters).

    Parameters
    ----------
    source : Source
        Audio ``(channels, samples)`` at ``source.sr``.
    columns, n_mels : int
        About how many frames, and how many mel bands.

    Returns
    -------
    ndarray, shape (n_mels, frames)
        Power in dB (ref 1.0).

    Examples
    --------
    >>> import numpy as np, librosa
    >>> from stemkit.audio import ArraySource
    >>> y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> ref = librosa.power_to_db(librosa.feature.melspectrogram(
    ...     y=y, sr=22050, n_fft=1024, hop_length=256, n_mels=96, fmax=11025), top_db=None)
    >>> bool(np.allclose(mel_db_source(ArraySource(y, 22050)), ref, atol=1e-3))
    True
    """
    import librosa
    from scipy import fft as sfft
    from scipy.signal import get_window

    from stemkit.audio import BLOCK

    sr, n = source.sr, source.n
    n_fft = 2048 if sr >= 32000 else 1024
    hop = max(n_fft // 4, int(np.ceil(n / columns)))
    frames = 1 + n // hop
    window = get_window("hann", n_fft, fftbins=True).astype(np.float32)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=sr / 2)
    power = np.empty((n_fft // 2 + 1, frames), np.float32)
    per_read = max(1, BLOCK // hop)
    half = n_fft // 2
    for j in range(0, frames, per_read):
        k = min(frames, j + per_read)
        lo = j * hop - half
        mono = source.read(lo, (k - 1) * hop + half + (n_fft - 2 * half)).mean(axis=0)
        idx = (np.arange(k - j) * hop)[:, None] + np.arange(n_fft)
        spec = sfft.rfft(mono[idx] * window, axis=-1)  # float32 in, complex64 out
        power[:, j:k] = (spec.real**2 + spec.imag**2).T
    return librosa.power_to_db(basis @ power, ref=1.0, top_db=None)


@dataclass(frozen=True)
class Panel:
    """One spectrogram as drawn: the mel dB image (:func:`mel_db`) and the seconds it spans.

    Computing panels as soon as the audio is loaded lets the audio go before the figure is
    drawn (a panel of a 3-min stereo stem is 0.2 MB; the stem is 64 MB).

    Attributes
    ----------
    image : ndarray, shape (n_mels, columns)
        Power in dB (ref 1.0).
    seconds : float
        Duration the columns span.
    start : float
        Time of the first column, in seconds of the track.

    Examples
    --------
    >>> import numpy as np
    >>> p = Panel.of(np.zeros((2, 44100), np.float32), 44100)
    >>> p.image.shape[0], p.seconds
    (96, 1.0)
    >>> q = p.crop(0.25, 0.75)
    >>> q.start, q.seconds
    (0.25, 0.5)
    >>> p.crop(5.0).image.shape[1]          # past the end: the last column, never nothing
    1
    """

    image: np.ndarray
    seconds: float
    start: float = 0.0

    @classmethod
    def of(cls, y: np.ndarray, sr: int) -> Panel:
        """The panel of audio ``y`` at ``sr``."""
        return cls(mel_db(y, sr), y.shape[-1] / sr)

    @classmethod
    def of_source(cls, source: Source) -> Panel:
        """The panel of a source (e.g. a stem's file), read a block at a time."""
        return cls(mel_db_source(source), source.n / source.sr)

    def crop(self, start: float = 0.0, end: float | None = None) -> Panel:
        """The columns between ``start`` and ``end`` seconds (of the track)."""
        stop = self.start + self.seconds
        lo = min(max(self.start, float(start)), stop)
        hi = stop if end is None else min(max(lo, float(end)), stop)
        cols = self.image.shape[1]
        per = cols / self.seconds if self.seconds > 0 else 0.0
        a = min(int(np.floor((lo - self.start) * per)), max(cols - 1, 0))  # a column at least
        b = max(a + 1, int(np.ceil((hi - self.start) * per)))
        return Panel(self.image[:, a : min(b, cols)], hi - lo, lo)


def _panel(y: np.ndarray | Panel, sr: int) -> Panel:
    return y if isinstance(y, Panel) else Panel.of(y, sr)


def _mel_ticks(ax, sr: int, n_mels: int) -> None:
    import librosa

    freqs = librosa.mel_frequencies(n_mels=n_mels, fmax=sr / 2)
    ticks = [f for f in (100, 500, 1000, 2000, 5000, 10000, 20000) if f < sr / 2]
    ax.set_yticks(np.interp(ticks, freqs, np.arange(n_mels)))
    ax.set_yticklabels([f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])


# The grid's margins in inches: fixed, so that no layout engine has to measure every tick label
# at each save (constrained layout cost more than the drawing). Labels are short ("20k", a
# provider's name set vertically), so these fit any batch.
_GRID_LEFT, _GRID_RIGHT, _GRID_BOTTOM = 0.78, 0.95, 0.5
_GRID_TOP, _GRID_SUPTITLE, _GRID_TITLE = 0.06, 0.24, 0.27  # figure title, stem titles
_GRID_WSPACE, _GRID_HSPACE = 0.16, 0.12


def spectrogram_grid(
    rows: Mapping[str, Mapping[str, np.ndarray | Panel]],
    sr: int,
    *,
    mixture: np.ndarray | Panel | None = None,
    title: str | None = None,
    dynamic_range: float = 80.0,
    width: float = 3.2,
    height: float = 1.9,
) -> Figure:
    """A grid of mel spectrograms: one row per source (reference, each provider), one column
    per stem; an optional mixture row on top. One colour scale for the whole grid. Each
    signal is audio ``(channels, samples)`` at ``sr`` or a :class:`Panel` computed before.

    Parameters
    ----------
    rows : mapping of str to mapping of str to array or Panel
        ``{source: {stem: audio (channels, samples) or Panel}}``, one grid row per source.
    sr : int
        Sample rate of the audio, in Hz (the frequency axis runs to ``sr / 2``).
    mixture : array or Panel, optional
        The mixture, drawn alone in a row above the others.
    title : str, optional
        The figure's title (e.g. the track).
    dynamic_range : float
        The colour scale spans this many dB below the grid's loudest cell.
    width, height : float
        Inches per panel, its share of the figure's margins included.

    Returns
    -------
    Figure
        A matplotlib figure laid out in fixed margins (no layout engine runs at save).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(0, 0.1, (2, 22050)).astype(np.float32)
    >>> fig = spectrogram_grid({"reference": {"vocals": x, "drums": x}}, 22050, mixture=x)
    >>> fig.axes[0].get_title(), len(fig.axes)        # 2 rows x 2 stems and the colour bar
    ('mixture', 5)
    """
    stems = list(dict.fromkeys(s for r in rows.values() for s in r))
    labels = (["mixture"] if mixture is not None else []) + list(rows)
    ncols, nrows = max(1, len(stems)), len(labels)
    titled = 2 if mixture is not None and nrows > 1 else 1  # rows with stem titles above
    top = _GRID_TOP + (_GRID_SUPTITLE if title else 0.0) + _GRID_TITLE
    gaps_w = _GRID_LEFT + _GRID_RIGHT + (ncols - 1) * _GRID_WSPACE
    gaps_h = top + _GRID_BOTTOM + (nrows - 1) * _GRID_HSPACE + (titled - 1) * _GRID_TITLE
    fig_w = max(width * ncols, gaps_w + 2.0 * ncols)  # a panel is 2 x 1 inches at least
    fig_h = max(height * nrows, gaps_h + 1.0 * nrows)
    pw, ph = (fig_w - gaps_w) / ncols, (fig_h - gaps_h) / nrows  # one panel's axes, in inches
    fig = plt.figure(figsize=(fig_w, fig_h))
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):  # explicit positions: a title row gets room above it
        y1 = fig_h - top - i * (ph + _GRID_HSPACE) - (_GRID_TITLE if titled == 2 and i else 0)
        for j in range(ncols):
            x0 = _GRID_LEFT + j * (pw + _GRID_WSPACE)
            share = axes[0, 0] if i or j else None
            axes[i, j] = fig.add_axes(
                (x0 / fig_w, (y1 - ph) / fig_h, pw / fig_w, ph / fig_h), sharex=share, sharey=share
            )
    panels = {}
    if mixture is not None:
        panels[("mixture", stems[0] if stems else "mixture")] = _panel(mixture, sr)
    for label, by_stem in rows.items():
        for stem, y in by_stem.items():
            panels[(label, stem)] = _panel(y, sr)
    images = {k: p.image for k, p in panels.items()}
    vmax = max((float(im.max()) for im in images.values()), default=0.0)
    vmin = vmax - dynamic_range
    last, ticked = None, False
    for i, label in enumerate(labels):
        for j, stem in enumerate(stems or ["mixture"]):
            ax = axes[i, j]
            im = images.get((label, stem))
            bottom_row = (
                i == nrows - 1
                or (label, stem) not in images
                or (i + 1 < nrows and (labels[i + 1], stem) not in images)
            )
            ax.tick_params(labelleft=j == 0, labelbottom=bottom_row)
            if im is None:
                ax.set_axis_off()
                continue
            p = panels[(label, stem)]
            last = ax.imshow(
                im,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=vmin,
                vmax=vmax,
                extent=(p.start, p.start + p.seconds, -0.5, im.shape[0] - 0.5),
                interpolation="nearest",
            )
            if not ticked:  # the y axis is shared: its ticks are set once for every panel
                _mel_ticks(ax, sr, im.shape[0])
                ticked = True
            if i == 0 or label == "mixture" or (i == 1 and labels[0] == "mixture"):
                ax.set_title(stem if label != "mixture" else "mixture", fontsize=10)
            if j == 0:
                ax.set_ylabel(label, fontsize=10, color=provider_color(label), fontweight="bold")
            if bottom_row:
                ax.set_xlabel("time (s)")
    if last is not None:  # the colour bar in the right margin, 60 % of the panels' height
        span = fig_h - top - _GRID_BOTTOM
        cax = fig.add_axes(
            (
                (fig_w - _GRID_RIGHT + 0.12) / fig_w,
                (_GRID_BOTTOM + 0.2 * span) / fig_h,
                0.16 / fig_w,
                0.6 * span / fig_h,
            )
        )
        fig.colorbar(last, cax=cax, label="dB")
    if title:
        fig.suptitle(title, y=1 - _GRID_TOP / fig_h, va="top")
    return fig


def timeline_chart(tl: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Gantt chart of jobs: one lane per (provider, track) job, one bar per stage.

    Vendor stages and the client's own steps are drawn in two sub-lanes; time is seconds from
    the job's first timestamp. Stages of a vendor attempt that failed (a retry followed, or the
    attempt reported a failure) are hatched with a red edge; a stage whose end event never came
    (``open_end``) has a dashed edge. Pass vendor rows moved onto our clock
    (:func:`stemkit.timing.on_our_clock`) for both sub-lanes to share one clock.

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> fig = timeline_chart(timeline([("Processing", "2020-07-21T14:51:15Z"),
    ...                                ("Finalising", "2020-07-21T14:52:06Z")],
    ...                               provider="sourceress", track="t"))
    """
    # one lane per (provider, track); job ids written "label:id" (transcriptions of several
    # sources of one track) get a lane per label
    labels = [j.split(":", 1)[0] if isinstance(j, str) and ":" in j else "" for j in tl["job_id"]]
    tl = tl.assign(
        lane=[f"{p} · {lb}" if lb else p for p, lb in zip(tl["provider"], labels, strict=True)]
    )
    jobs = list(dict.fromkeys(zip(tl["lane"], tl["track"], strict=True)))
    # tall enough for the legend beside the lanes too (one line per stage): never cut off
    stages = tl.loc[tl["stage"] != "end to end", "stage"].nunique()
    height = max(0.9 + 0.75 * max(1, len(jobs)), 0.9 + 0.2 * stages)
    fig, ax = plt.subplots(figsize=(10, height), layout="constrained")
    seen, marks = set(), set()
    for lane, (provider, track) in enumerate(jobs):
        rows = tl[(tl["lane"] == provider) & (tl["track"] == track)]
        rows = rows[rows["stage"] != "end to end"]
        if rows.empty:
            continue
        t0 = min(rows["start"])
        for _, r in rows.iterrows():
            offset = -0.18 if r["source"] == "vendor" else 0.18
            left = (pd.Timestamp(r["start"]) - pd.Timestamp(t0)).total_seconds()
            color = STAGE_COLORS.get(r["stage"], "#bbbbbb")
            failed, open_end = _flag(r.get("failed")), _flag(r.get("open_end"))
            ax.barh(
                lane + offset,
                max(r["seconds"], 0.02),
                left=left,
                height=0.32,
                color=color,
                alpha=0.45 if failed else 1.0,
                hatch="///" if failed else None,
                edgecolor=FAILED_EDGE if failed else ("#333333" if open_end else "white"),
                linestyle="--" if open_end else "-",
                label=r["stage"] if r["stage"] not in seen else None,
            )
            seen.add(r["stage"])
            marks |= {"failed attempt"} if failed else set()
            marks |= {"no end event"} if open_end else set()
    ax.set_yticks(range(len(jobs)))
    ax.set_yticklabels(
        [f"{p}\n{t}" if len(set(t for _, t in jobs)) > 1 else p for p, t in jobs], fontsize=9
    )
    for tick, (p, _) in zip(ax.get_yticklabels(), jobs, strict=True):
        tick.set_color(provider_color(p.split(" · ")[0]))
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the job's first timestamp (upper: vendor, lower: client)")
    ax.grid(axis="x", alpha=0.3)
    if seen:
        handles, labels = ax.get_legend_handles_labels()
        if "failed attempt" in marks:
            handles.append(
                plt.Rectangle((0, 0), 1, 1, fc="white", ec=FAILED_EDGE, hatch="///", alpha=0.6)
            )
            labels.append("failed attempt")
        if "no end event" in marks:
            handles.append(plt.Rectangle((0, 0), 1, 1, fc="white", ec="#333333", ls="--"))
            labels.append("no end event")
        ax.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
        )
    if title:
        ax.set_title(title)
    return fig


def _flag(value: Any) -> bool:
    """A boolean cell as written to CSV and read back (True/False/"True"/NaN)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) if pd.notna(value) else False


#: tracks up to which a chart draws every track's dot as is (beyond: smaller, translucent)
DOTS_FULL = 40


def _dot_style(n: int) -> dict[str, float]:
    """Marker size and alpha for ``n`` dots in one column: a thousand stay readable."""
    if n <= DOTS_FULL:
        return {"s": 10, "alpha": 0.9}
    return {"s": 4, "alpha": max(0.08, min(0.6, 12 / np.sqrt(n)))}


def _jitter(x: float, n: int, width: float) -> np.ndarray:
    """``n`` x positions for the dots of one bar ``width`` wide: all at ``x`` for a few
    tracks, spread sideways (seeded) for many, so a thousand dots read as a cloud."""
    if n <= DOTS_FULL:
        return np.full(n, float(x))
    return x + np.random.default_rng(n).uniform(-0.3, 0.3, n) * width


def metric_chart(
    metrics: pd.DataFrame,
    metric: str = "sdr",
    *,
    variant: str | None = "bsseval_v4",
    title: str | None = None,
    aggregate: str = "median",
) -> Figure:
    """Bars of a metric per stem, one bar per provider (``aggregate`` over tracks: ``median``
    as SiSEC18, ``mean`` as MDX'23; dots per track); only rows of ``variant`` (never two
    definitions of a metric in one chart).

    Examples
    --------
    >>> df = pd.DataFrame({"track": ["t"] * 2, "provider": ["a", "b"], "stem": ["vocals"] * 2,
    ...                    "metric": ["sdr"] * 2, "value": [3.0, 5.0]})
    >>> fig = metric_chart(df)
    """
    df = metrics[metrics["metric"] == metric]
    if variant is not None and "variant" in df:
        df = df[df["variant"] == variant]
    stems = list(dict.fromkeys(df["stem"]))
    rank = {"oracle": -1, "baseline": 1, "mixture": 2}
    providers = sorted(dict.fromkeys(df["provider"]), key=lambda p: rank.get(p, 0))
    fig, ax = plt.subplots(
        figsize=(max(5, 1.6 * len(stems) * max(1, len(providers)) / 2), 3.6), layout="constrained"
    )
    width = 0.8 / max(1, len(providers))
    for k, prov in enumerate(providers):
        for i, stem in enumerate(stems):
            vals = df[(df["provider"] == prov) & (df["stem"] == stem)]["value"].dropna()
            if vals.empty:
                continue
            x = i - 0.4 + width * (k + 0.5)
            ax.bar(
                x,
                vals.mean() if aggregate == "mean" else vals.median(),
                width * 0.9,
                color=provider_color(prov),
                label=prov if i == 0 else None,
                alpha=0.85,
            )
            ax.scatter(_jitter(x, len(vals), width), vals, color="black", zorder=3,
                       linewidths=0, **_dot_style(len(vals)))  # fmt: skip
    ax.set_xticks(range(len(stems)))
    ax.set_xticklabels(stems)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(f"{metric} (dB)")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def distribution_chart(
    metrics: pd.DataFrame,
    metric: str,
    *,
    variant: str | None = None,
    unit: str = "dB",
    title: str | None = None,
    seed: int = 0,
) -> Figure:
    """The distribution of one metric over tracks, per stem and provider: a box (median,
    quartiles, whiskers at 1.5 IQR) over every track's dot (jittered sideways). One figure
    per metric however many tracks: its size does not grow with the batch.

    Parameters
    ----------
    metrics : DataFrame
        Tidy metrics (``provider``, ``stem``, ``metric``, ``variant``, ``value``).
    metric, variant : str
        The rows drawn (one definition of a metric per chart).
    unit : str
        The y axis unit.
    title : str, optional
    seed : int
        Of the jitter (the same figure for the same table).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"provider": ["a", "b"] * 500, "stem": ["vocals"] * 1000,
    ...                    "metric": ["sdr"] * 1000, "value": rng.normal(5, 2, 1000)})
    >>> len(distribution_chart(df, "sdr").axes)
    1
    """
    df = metrics[metrics["metric"] == metric]
    if variant is not None and "variant" in df:
        df = df[df["variant"] == variant]
    df = df.dropna(subset=["value"])
    stems = list(dict.fromkeys(df["stem"]))
    rank = {"oracle": -1, "baseline": 1, "mixture": 2}
    providers = sorted(dict.fromkeys(df["provider"]), key=lambda p: rank.get(p, 0))
    fig, ax = plt.subplots(
        figsize=(min(11, max(5, 0.55 * len(stems) * max(1, len(providers)) + 2)), 3.6),
        layout="constrained",
    )
    rng = np.random.default_rng(seed)
    width = 0.8 / max(1, len(providers))
    groups = {k: g["value"].to_numpy(float) for k, g in df.groupby(["provider", "stem"])}
    for k, prov in enumerate(providers):
        color = provider_color(prov)
        for i, stem in enumerate(stems):
            vals = groups.get((prov, stem))
            if vals is None or not len(vals):
                continue
            x = i - 0.4 + width * (k + 0.5)
            jitter = rng.uniform(-0.3, 0.3, len(vals)) * width
            ax.scatter(x + jitter, vals, color=color, zorder=2, linewidths=0,
                       **_dot_style(len(vals)))  # fmt: skip
            ax.boxplot(
                vals, positions=[x], widths=width * 0.8, showfliers=False, patch_artist=True,
                boxprops={"facecolor": "none", "edgecolor": "black", "linewidth": 1},
                medianprops={"color": "black", "linewidth": 1.6},
                whiskerprops={"color": "black"}, capprops={"color": "black"},
            )  # fmt: skip
    ax.set_xticks(range(len(stems)))
    ax.set_xticklabels(stems)
    ax.set_xlim(-0.6, max(len(stems), 1) - 0.4)
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    handles = [plt.Line2D([], [], marker="o", ls="", color=provider_color(p)) for p in providers]
    ax.legend(handles, providers, frameon=False, fontsize=9, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    ax.grid(axis="y", alpha=0.3)
    n = df.groupby(["provider", "stem"]).size()
    if len(n):
        note = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
        ax.set_title(f"{title or metric} ({note} tracks per box)", fontsize=10)
    elif title:
        ax.set_title(title, fontsize=10)
    return fig


def timing_chart(timing: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Provider comparison of time: median seconds per stage (dots: tracks) and the
    real-time factor (processing seconds / audio seconds) per provider.

    Examples
    --------
    >>> t = pd.DataFrame({"provider": ["a", "b"], "track": ["t", "t"], "queue wait": [1, 2],
    ...                   "processing": [3, 4], "end to end": [5, 7], "rtf": [0.1, 0.2]})
    >>> len(timing_chart(t).axes)
    2
    """
    stages = ["queue wait", "processing", "end to end"]
    providers = list(dict.fromkeys(timing["provider"]))
    fig, (ax, ax_rtf) = plt.subplots(
        1, 2, figsize=(11, 3.6), layout="constrained", gridspec_kw={"width_ratios": [3, 1.3]}
    )
    width = 0.8 / max(1, len(providers))
    for k, prov in enumerate(providers):
        rows = timing[timing["provider"] == prov]
        for i, stage in enumerate(stages):
            vals = rows[stage].dropna() if stage in rows else pd.Series(dtype=float)
            if vals.empty:
                continue
            x = i - 0.4 + width * (k + 0.5)
            ax.bar(x, vals.median(), width * 0.9, color=provider_color(prov), alpha=0.85)
            ax.scatter(_jitter(x, len(vals), width), vals, color="black", zorder=3,
                       linewidths=0, **_dot_style(len(vals)))  # fmt: skip
        rtf = rows["rtf"].dropna()
        if not rtf.empty:
            ax_rtf.bar(k, rtf.median(), 0.7, color=provider_color(prov), alpha=0.85)
            ax_rtf.scatter(_jitter(k, len(rtf), 0.7), rtf, color="black", zorder=3,
                           linewidths=0, **_dot_style(len(rtf)))  # fmt: skip
    handles = [plt.Rectangle((0, 0), 1, 1, color=provider_color(p)) for p in providers]
    ax.legend(handles, providers, frameon=False, fontsize=9)
    ax.set_xticks(range(len(stages)))
    ax.set_xticklabels(stages)
    ax.set_ylabel("seconds (bars: median, dots: tracks)")
    ax.grid(axis="y", alpha=0.3)
    ax_rtf.set_xticks(range(len(providers)))
    ax_rtf.set_xticklabels(providers, rotation=20)
    ax_rtf.set_ylabel("real-time factor (lower is faster)")
    ax_rtf.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


#: vendor stage names a client step may share (drawn "(ours)" when it is the client's)
VENDOR_STAGE_NAMES = ("formatting", "metadata", "trial chunking", "queue wait", "processing")
#: percentile columns drawn by :func:`latency_chart`, with their markers
PERCENTILE_MARKERS = {"p90": "^", "p95": "D", "p99": "o", "max": "x"}


def latency_chart(
    percentiles: pd.DataFrame,
    *,
    order: list[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Latency as a distribution: per stage, one bar per provider at the median (``p50``) and
    markers at p90, p95, p99 and the maximum (a table of
    :func:`stemkit.compare.timing_stats.stage_percentiles`).

    Examples
    --------
    >>> p = pd.DataFrame({"provider": ["a", "b"], "stage": ["processing"] * 2, "n": [3, 3],
    ...                   "p50": [1.0, 2.0], "p90": [2.0, 3.0], "p95": [2.5, 3.5],
    ...                   "p99": [2.9, 3.9], "max": [3.0, 4.0]})
    >>> len(latency_chart(p).axes)
    1
    """
    if "source" in percentiles:  # the client's "metadata" step is not the vendor's stage
        percentiles = percentiles.assign(
            stage=[
                f"{st} (ours)" if src == "client" and st in VENDOR_STAGE_NAMES else st
                for st, src in zip(percentiles["stage"], percentiles["source"], strict=True)
            ]
        )
    stages = list(dict.fromkeys(percentiles["stage"]))
    if order:  # stages named in ``order`` first, in its order; "(ours)" next to its stage
        rank = {name: i for i, name in enumerate(order)}
        stages.sort(key=lambda st: rank.get(st.removesuffix(" (ours)"), len(rank)))
    providers = list(dict.fromkeys(percentiles["provider"]))
    fig, ax = plt.subplots(
        figsize=(min(11, max(6, 1.1 * len(stages) + 3)), 3.8), layout="constrained"
    )
    width = 0.8 / max(1, len(providers))
    labelled: set[str] = set()

    def label(name: str) -> str | None:
        first = name not in labelled
        labelled.add(name)
        return name if first else None

    for k, prov in enumerate(providers):
        for i, stage in enumerate(stages):
            row = percentiles[(percentiles["provider"] == prov) & (percentiles["stage"] == stage)]
            if row.empty:
                continue
            row = row.iloc[0]
            x = i - 0.4 + width * (k + 0.5)
            ax.bar(x, row["p50"], width * 0.9, color=provider_color(prov), alpha=0.85,
                   label=label(prov))  # fmt: skip
            for col, marker in PERCENTILE_MARKERS.items():
                ax.scatter(x, row[col], marker=marker, s=22, color="black", zorder=3,
                           label=label(col))  # fmt: skip
    ax.set_xticks(range(len(stages)))
    ax.set_xticklabels(stages, rotation=20, ha="right")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("seconds (bar: median)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return fig


def load_chart(
    in_flight: pd.DataFrame,
    incidents: pd.DataFrame,
    *,
    finished: pd.DataFrame | None = None,
    title: str | None = None,
) -> Figure:
    """Jobs in flight over time per provider (a step line), jobs finished per minute (when
    ``finished`` is given: :func:`stemkit.compare.timing_stats.finished`), then vendor
    retries and failed jobs per time bin (tables of
    :func:`stemkit.compare.timing_stats.in_flight` and
    :func:`~stemkit.compare.timing_stats.incidents`); time in minutes since the first job.

    Examples
    --------
    >>> t = pd.to_datetime(["2024-01-01T00:00Z", "2024-01-01T00:01Z"])
    >>> f = pd.DataFrame({"provider": ["a", "a"], "time": t, "jobs": [1, 0]})
    >>> i = pd.DataFrame({"provider": ["a"], "time": t[:1], "retries": [1], "failures": [0]})
    >>> len(load_chart(f, i).axes)
    2
    """
    rate = finished is not None and not finished.empty
    fig, axes = plt.subplots(
        3 if rate else 2, 1, figsize=(10, 6.4 if rate else 4.8), sharex=True,
        layout="constrained", gridspec_kw={"height_ratios": [2, 1.4, 1] if rate else [2, 1]},
    )  # fmt: skip
    ax, ax2 = axes[0], axes[-1]
    times = pd.concat([pd.to_datetime(in_flight["time"], utc=True),
                       pd.to_datetime(incidents["time"], utc=True)])  # fmt: skip
    t0 = times.min() if not times.empty else pd.Timestamp(0, tz="UTC")

    def minutes(col: pd.Series) -> np.ndarray:
        return ((pd.to_datetime(col, utc=True) - t0).dt.total_seconds() / 60).to_numpy()

    for prov, rows in in_flight.groupby("provider", sort=False):
        ax.step(minutes(rows["time"]), rows["jobs"], where="post", color=provider_color(prov),
                label=prov)  # fmt: skip
    ax.set_ylabel("jobs in flight")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if not in_flight.empty:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if rate:
        ax_rate = axes[1]
        for prov, rows in finished.groupby("provider", sort=False):
            x = minutes(rows["time"])
            ax_rate.step(np.append(x, x[-1] + (x[1] - x[0] if len(x) > 1 else 1)),
                         np.append(rows["per_minute"], rows["per_minute"].iloc[-1]),
                         where="post", color=provider_color(prov), label=prov)  # fmt: skip
        ax_rate.set_ylabel("jobs finished\nper minute")
        ax_rate.set_ylim(bottom=0)
        ax_rate.grid(alpha=0.3)
    providers = list(dict.fromkeys(incidents["provider"]))
    bins = np.diff(np.unique(minutes(incidents["time"]))) if len(incidents) > 1 else []
    span = np.ptp(minutes(times)) if len(times) else 1.0
    width = 0.8 * min([*bins, max(span, 1e-3) / 20]) / max(1, len(providers))
    for k, prov in enumerate(providers):
        rows = incidents[incidents["provider"] == prov]
        x = minutes(rows["time"]) + width * k
        ax2.bar(x, rows["retries"], width, color=provider_color(prov), label=f"{prov} retries",
                align="edge")  # fmt: skip
        ax2.bar(x, rows["failures"], width, bottom=rows["retries"], color=FAILED_EDGE,
                align="edge",
                hatch="///", alpha=0.6, label="failed jobs" if k == 0 else None)  # fmt: skip
    ax2.set_ylabel("retries / failures")
    ax2.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.set_xlabel("minutes since the first job started")
    ax2.grid(axis="y", alpha=0.3)
    if providers:
        ax2.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    return fig


#: speech tracks up to which :func:`intelligibility_chart` draws a bar per track
BARS_MAX_TRACKS = 12


def intelligibility_chart(intel: pd.DataFrame, *, title: str | None = None) -> Figure:
    """WER per speech track: mixture, reference dialogue and each provider's speech stem
    (lower is better; a blank transcript counts as every word lost). Beyond
    :data:`BARS_MAX_TRACKS` tracks, the distribution per source instead
    (:func:`distribution_chart`).

    Examples
    --------
    >>> df = pd.DataFrame({"track": ["t", "t"], "source": ["mixture", "a"], "wer": [0.5, 0.2]})
    >>> len(intelligibility_chart(df).axes)
    1
    """
    df = intel.dropna(subset=["wer"])
    tracks = list(dict.fromkeys(df["track"]))
    if len(tracks) > BARS_MAX_TRACKS:  # a bar per track no longer reads: the distribution
        rows = pd.DataFrame({"provider": df["source"], "stem": "speech stem", "metric": "WER",
                             "value": df["wer"].astype(float)})  # fmt: skip
        return distribution_chart(rows, "WER", unit="lower is better", title=title)
    first = [s for s in ("mixture", "reference") if s in set(df["source"])]
    sources = first + [s for s in dict.fromkeys(df["source"]) if s not in first]
    fig, ax = plt.subplots(
        figsize=(max(6, 1.2 * len(tracks) * max(1, len(sources)) / 2), 3.6), layout="constrained"
    )
    width = 0.8 / max(1, len(sources))
    for k, source in enumerate(sources):
        vals = [df[(df["track"] == t) & (df["source"] == source)]["wer"] for t in tracks]
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(tracks))]
        heights = [v.iloc[0] if len(v) else np.nan for v in vals]
        ax.bar(xs, heights, width * 0.9, color=provider_color(source), label=source, alpha=0.85)
    ax.set_xticks(range(len(tracks)))
    ax.set_xticklabels(tracks, rotation=10)
    ax.set_ylabel("word error rate (lower is better)")
    ax.set_ylim(0, max(1.0, float(df["wer"].max()) if not df.empty else 1.0) * 1.05)
    ax.legend(frameon=False, fontsize=9, ncols=min(4, len(sources)))
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- spectrograms
#: Frequency scales of :func:`spectrogram`.
SCALES = ("mel", "log", "linear")


#: What 0 dB is on :func:`spectrogram`'s colour scale.
DB_REFERENCE = "0 dB = a full-scale sine (0 dBFS)"


@dataclass
class Spectrogram:
    """A display spectrogram: ``db`` is ``(rows, columns)`` power in dB relative to a
    full-scale sine (a sine of peak 1.0 reads about 0 dB in its band, quieter content is
    negative), row ``i`` centred on ``freqs[i]`` Hz; columns span ``start``–``end`` seconds."""

    db: np.ndarray
    freqs: np.ndarray
    start: float
    end: float
    scale: str

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """For ``imshow(origin="lower")``: time in seconds, rows by index."""
        return (self.start, self.end, -0.5, self.db.shape[0] - 0.5)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)


def band_edges(scale: str, sr: int, rows: int, fmin: float = 30.0) -> np.ndarray:
    """``rows + 1`` band edges (Hz) from low to ``sr / 2`` on a ``linear``, ``log`` or
    ``mel`` axis.

    Examples
    --------
    >>> band_edges("linear", 8000, 4).tolist()
    [0.0, 1000.0, 2000.0, 3000.0, 4000.0]
    >>> band_edges("log", 8000, 2, fmin=40).round().tolist()
    [40.0, 400.0, 4000.0]
    """
    nyquist = sr / 2
    if scale == "linear":
        return np.linspace(0.0, nyquist, rows + 1)
    if scale == "log":
        return np.geomspace(fmin, nyquist, rows + 1)
    if scale == "mel":
        return _mel_to_hz(np.linspace(0.0, _hz_to_mel(nyquist), rows + 1))
    raise ValueError(f"unknown frequency scale {scale!r}; one of {', '.join(SCALES)}")


def _stft_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(n_fft // 2 + 1, frames)`` power of Hann-windowed, centred frames (librosa's STFT)."""
    import librosa

    x = np.pad(x, (0, max(0, n_fft - len(x))))
    spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def _pool(power: np.ndarray, bin_hz: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power of the FFT bins in each band; bands narrower than a bin are interpolated."""
    n_bins = power.shape[0]
    lo = np.clip(np.ceil(edges[:-1] / bin_hz).astype(int), 0, n_bins)
    hi = np.clip(np.ceil(edges[1:] / bin_hz).astype(int), 0, n_bins)
    hi[-1] = n_bins  # the top band includes Nyquist
    cum = np.vstack([np.zeros((1, power.shape[1]), power.dtype), np.cumsum(power, axis=0)])
    counts = hi - lo
    out = (cum[hi] - cum[lo]) / np.maximum(counts, 1)[:, None]
    centres = np.sqrt(edges[:-1] * edges[1:]) if edges[0] > 0 else (edges[:-1] + edges[1:]) / 2
    empty = counts <= 0
    if empty.any():
        pos = np.clip(centres[empty] / bin_hz, 0, n_bins - 1)
        i = np.minimum(np.floor(pos).astype(int), n_bins - 2)
        w = (pos - i)[:, None]
        out[empty] = power[i] * (1 - w) + power[i + 1] * w
    return out, centres


def spectrogram(
    y: np.ndarray,
    sr: int,
    *,
    scale: str = "mel",
    start: float = 0.0,
    end: float | None = None,
    columns: int = 600,
    rows: int = 160,
    fmin: float = 30.0,
) -> Spectrogram:
    """Spectrogram of the mono downmix of ``y`` between ``start`` and ``end`` seconds, on a
    ``linear``, ``log`` or ``mel`` frequency axis, sized for display: about ``columns`` frames
    (the hop grows with the range) and ``rows`` frequency bands (FFT bins averaged per band).
    Levels are dB re a full-scale sine (:data:`DB_REFERENCE`): the power of a sine of peak 1.0
    in its FFT bin, ``(n_fft / 4)²`` with the Hann window, is 0 dB (a band that averages
    several bins, high on the linear axis, shows a sine up to about 6 dB lower).

    Examples
    --------
    >>> sr = 22050
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(2 * sr) / sr).astype(np.float32)
    >>> s = spectrogram(tone, sr, scale="log", start=0.5, end=1.5, rows=100)
    >>> s.db.shape[0], s.db.shape[1] <= 610, round(float(s.freqs[s.db.mean(axis=1).argmax()]), -2)
    (100, True, 1000.0)
    >>> -7 < float(s.db.max()) <= 0.5      # a full-scale sine: 0 dB in one bin
    True
    """
    x = np.asarray(y, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    duration = len(x) / sr
    end = duration if end is None else min(float(end), duration)
    start = min(max(0.0, float(start)), end)
    seg = x[int(round(start * sr)) : int(round(end * sr))]
    n_fft = 2048 if sr <= 24000 else 4096
    hop = max(n_fft // 8, math.ceil(max(len(seg), 1) / columns))
    power = _stft_power(seg if len(seg) else np.zeros(1, np.float32), n_fft, hop)
    pooled, centres = _pool(power, sr / n_fft, band_edges(scale, sr, rows, fmin))
    full_scale = (n_fft / 4.0) ** 2  # |STFT|² of a sine of peak 1 at its bin (Hann window)
    db = 10.0 * np.log10(np.maximum(pooled / full_scale, 1e-14))
    return Spectrogram(db.astype(np.float32), centres, start, end, scale)


def _hz_label(f: float) -> str:
    """``50 Hz``, ``1 kHz``, ``2.5 kHz``: a frequency tick with its unit."""
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def freq_ticks(spec: Spectrogram, height_px: float, *, min_gap_px: float = 16.0) -> list[float]:
    """Frequencies (Hz) to label on a spectrogram's axis ``height_px`` tall, at least
    ``min_gap_px`` apart (a tick label's height) so that no two labels print over each other:
    on mel and log axes the low ticks (50, 100, 200 Hz) crowd together, so they are thinned
    from the top down.

    Examples
    --------
    >>> s = spectrogram(np.zeros(22050, np.float32), 22050, scale="mel", rows=160)
    >>> freq_ticks(s, 100)
    [100.0, 1000.0, 2000.0, 5000.0, 10000.0]
    >>> freq_ticks(s, 400)[:2]
    [100.0, 200.0]
    """
    top, rows = float(spec.freqs[-1]), len(spec.freqs)
    if spec.scale == "linear":
        step = 1000 if top <= 6000 else 2000 if top <= 12000 else 4000
        candidates = [float(f) for f in np.arange(0, top, step)]
    else:
        candidates = [50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0]
    candidates = [t for t in candidates if spec.freqs[0] <= t <= top]
    px = np.interp(candidates, spec.freqs, np.arange(rows)) * height_px / max(rows, 1)
    where = dict(zip(candidates, px, strict=True))

    def rank(f: float) -> tuple[int, float]:  # decades first, then 5s, then 2s; high first
        lead = round(f / 10 ** np.floor(np.log10(f))) if f > 0 else 1
        return ({1: 0, 5: 1, 2: 2}.get(lead, 3), -f)

    kept: list[float] = []
    for f in sorted(candidates, key=rank):
        if all(abs(where[f] - where[k]) >= min_gap_px for k in kept):
            kept.append(f)
    return sorted(kept)


def _freq_ticks(ax: Any, spec: Spectrogram, height_px: float) -> None:
    ticks = freq_ticks(spec, height_px)
    ax.set_yticks(np.interp(ticks, spec.freqs, np.arange(len(spec.freqs))))
    ax.set_yticklabels([_hz_label(t) for t in ticks], fontsize=8)


def spectrogram_png(
    panels: dict[str, Spectrogram],
    *,
    dynamic_range: float = 80.0,
    title: str | None = None,
    width: float = 9.0,
    panel_height: float = 1.55,
    dpi: int = 100,
) -> bytes:
    """PNG of spectrograms stacked one per row (label on the left, in the provider's colour),
    on one colour scale: the loudest cell of all panels down to ``dynamic_range`` dB below.
    ``width`` inches × ``dpi`` is the image width in pixels (900 by default).

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> png = spectrogram_png({"mixture": spectrogram(x, 22050, scale="linear")})
    >>> png[:4]
    b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    n = max(1, len(panels))
    fig = Figure(figsize=(width, 0.7 + panel_height * n), dpi=dpi, layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    vmax = max((float(s.db.max()) for s in panels.values()), default=0.0)
    image = None
    for ax, (label, spec) in zip(axes, panels.items(), strict=False):
        image = ax.imshow(
            spec.db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - dynamic_range,
            vmax=vmax,
            extent=spec.extent,
            interpolation="nearest",
        )
        # the axis is about 80 % of a panel's height once titles and labels take their room
        _freq_ticks(ax, spec, 0.8 * panel_height * dpi)
        ax.set_ylabel(label, color=provider_color(label.split()[0]), fontweight="bold")
    if not panels:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "nothing to draw", ha="center", va="center")
    else:
        axes[-1].set_xlabel("time (s)")
        scale = next(iter(panels.values())).scale
        bar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01)
        bar.set_label(f"level (dB)\n{DB_REFERENCE}", fontsize=8)
        axes[0].set_title(f"frequency: {scale} scale", fontsize=8, loc="right", color="#555")
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
