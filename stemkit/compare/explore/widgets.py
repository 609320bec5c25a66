"""The explorer's widgets: :class:`Explorer` wires :mod:`stemkit.compare.explore.data` to
ipywidgets; :func:`explore` is what ``notebooks/explore.ipynb`` calls.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.compare.explore.data import (
    DEFAULT_SECONDS,
    MAX_PLAY_SECONDS,
    NO_BATCH,
    SCALES,
    BatchIndex,
    Selection,
    TrackTables,
    ab_metrics,
    ab_pair,
    flagged_verdicts,
    list_batches,
    load_selection,
    metric_choices,
    metric_table,
    player,
    resolve_batch,
    selection_spectrograms,
    spectrogram_png,
    stage_seconds,
    timeline_png,
    track_tables,
)


def _table_html(df: pd.DataFrame | None, empty: str) -> str:
    if df is None or df.empty:
        return f"<p><i>{html.escape(empty)}</i></p>"
    return df.to_html(na_rep="–", float_format=lambda v: f"{v:.3g}", border=0, classes="stemkit")


_STYLE = """<style>
.stemkit-explorer table.stemkit {border-collapse: collapse; font-size: 12px; margin: 4px 0 12px;}
.stemkit-explorer table.stemkit td, .stemkit-explorer table.stemkit th
  {padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right;}
.stemkit-explorer h4 {margin: 8px 0 2px;}
.stemkit-explorer .stemkit-scroll {max-width: 100%; overflow-x: auto;}
.stemkit-explorer table.stemkit td {max-width: 420px; white-space: normal;}
.stemkit-explorer .stemkit-note {color: #555; margin: 2px 0 6px;}
</style>"""


def _set_choices(widget: Any, options: Any, value: Any) -> None:
    """Set a selection widget's options and value in ONE message to the page. Sent apart, the
    page sees the new options with the old selection first: a ``SelectMultiple`` whose
    options shrink then fails on an index past its end ("Error setting state: Cannot set
    properties of undefined (setting 'selected')" in the browser console)."""
    with widget.hold_sync():
        widget.options = options
        widget.value = value


def _seconds(t: float) -> str:
    """``m:ss.s`` as a player's clock reads it."""
    return f"{int(t // 60)}:{t % 60:04.1f}"


class Explorer:
    """The explorer's widget tree over a batch folder (``.widget`` is the top widget).

    Controls (each an ipywidget, ``.value`` settable from code): :attr:`batch`, :attr:`track`,
    :attr:`stem`, :attr:`providers`, :attr:`scale`, :attr:`time_range`, :attr:`stereo`,
    :attr:`ab_a`, :attr:`ab_b`, :attr:`ab_mode`. Views: :attr:`players` (an ``Output`` with one
    ``Audio`` per source), :attr:`spectrogram` (``Image``), :attr:`ab_player`,
    :attr:`ab_spectrogram`, :attr:`ab_table`, :attr:`metrics`, :attr:`timeline`,
    :attr:`timeline_table`, :attr:`status`. A failure is written to :attr:`status`, not raised.

    Examples
    --------
    >>> ex = Explorer("reports/demo")                        # doctest: +SKIP
    >>> ex.track.value = ex.track.options[1]                 # doctest: +SKIP
    >>> ex.widget                                            # doctest: +SKIP
    """

    def __init__(self, batch_dir: str | os.PathLike, *, root: str | os.PathLike | None = None):
        import ipywidgets as W

        folder = resolve_batch(batch_dir)
        if folder is None:
            raise FileNotFoundError(f"no batch at or beside {batch_dir}")
        #: shown above the status line: which batch was opened instead of the one asked for
        self.notice = (
            ""
            if Path(batch_dir).resolve() == folder.resolve()
            else f"{batch_dir} is not a batch; showing {folder}, the newest batch beside it."
        )
        self.root = Path(root) if root is not None else folder.parent
        self.index = BatchIndex.open(folder)
        self.selection: Selection | None = None
        self.tables: TrackTables | None = None
        self._quiet = False
        wide = W.Layout(width="auto")

        batches = list_batches(self.root)
        if not any(b.resolve() == folder.resolve() for b in batches):
            batches.insert(0, folder)
        self.batch = W.Dropdown(
            options=[(b.name, str(b)) for b in batches], value=str(folder), description="batch"
        )
        self.track = W.Dropdown(description="track", layout=W.Layout(width="300px"))
        self.stem = W.Dropdown(description="stem", layout=W.Layout(width="220px"))
        self.providers = W.SelectMultiple(description="providers", rows=3)
        self.scale = W.ToggleButtons(options=list(SCALES), value="mel", description="frequency")
        self.scale.style.button_width = "70px"
        self.time_range = W.FloatRangeSlider(
            value=(0.0, 1.0),
            min=0.0,
            max=1.0,
            step=0.1,
            description="time (s)",
            continuous_update=False,
            readout=True,  # the handles' values while dragging (track time, seconds)
            readout_format=".1f",
            layout=W.Layout(width="480px"),
        )
        self.range_label = W.Label()
        #: "working: …" while a change is being worked on (empty when idle)
        self.busy = W.HTML()
        self.stereo = W.Checkbox(value=False, description="stereo players", indent=False)
        self.ab_a = W.Dropdown(description="A", layout=W.Layout(width="260px"))
        self.ab_b = W.Dropdown(description="B", layout=W.Layout(width="260px"))
        self.ab_mode = W.ToggleButtons(
            options=[("A then B", "sequence"), ("alternate every 2 s", "alternate")],
            value="sequence",
        )

        self.header = W.HTML()
        self.status = W.HTML()
        self.players = W.Output(layout=wide)
        picture = {"max_width": "100%", "align_self": "flex-start"}  # never stretched
        self.spectrogram = W.Image(format="png", layout=W.Layout(**picture))
        self.ab_player = W.Output(layout=wide)
        self.ab_spectrogram = W.Image(format="png", layout=W.Layout(**picture))
        self.ab_table = W.HTML()
        self.ab_note = W.HTML()
        self.metric = W.Dropdown(description="metric", layout=W.Layout(width="300px"))
        self.passes = W.Checkbox(value=False, description="show passed checks too", indent=False)
        self.metrics = W.HTML(layout=W.Layout(width="auto", max_width="100%"))
        self.timeline = W.Image(format="png", layout=W.Layout(**picture))
        self.timeline_table = W.HTML()

        self.tabs = W.Tab(
            children=[
                self.players,
                self.spectrogram,
                W.VBox(
                    [
                        W.HBox([self.ab_a, self.ab_b]),
                        self.ab_note,
                        self.ab_mode,
                        self.ab_player,
                        self.ab_table,
                        self.ab_spectrogram,
                    ]
                ),
                W.VBox([W.HBox([self.metric, self.passes]), self.metrics]),
                W.VBox([self.timeline, self.timeline_table]),
            ],
            titles=["listen", "spectrogram", "A/B", "metrics", "timeline"],
        )
        controls = W.VBox(
            [
                W.HBox([self.batch, self.track, self.stem]),
                W.HBox(
                    [
                        self.providers,
                        W.VBox(
                            [
                                self.scale,
                                W.HBox([self.time_range, self.range_label]),
                                W.HBox([self.stereo, self.busy]),
                            ]
                        ),
                    ]
                ),
            ]
        )
        self.widget = W.VBox([W.HTML(_STYLE), self.header, controls, self.tabs, self.status])
        self.widget.add_class("stemkit-explorer")

        self.batch.observe(self._on_batch, "value")
        self.track.observe(self._on_track, "value")
        for w in (self.stem, self.providers, self.time_range):
            w.observe(self._on_selection, "value")
        self.stereo.observe(self._on_stereo, "value")
        self.scale.observe(self._on_scale, "value")
        for w in (self.ab_a, self.ab_b):
            w.observe(self._on_ab, "value")
        self.ab_mode.observe(self._on_ab_mode, "value")
        for w in (self.metric, self.passes):
            w.observe(self._on_metric, "value")
        self._guard("open the batch", self._open_batch, folder)

    # -- event plumbing

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        """Set several controls without each change triggering its own refresh."""
        was, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = was

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        outer = self.busy.value == ""
        if outer:  # sent to the page at once: the reader sees the widget is working
            self.busy.value = f"<span style='color:#8a5a00'>⏳ working: {html.escape(what)}…</span>"
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a widget callback must never raise
            self.status.value = (
                f"<p style='color:#b00020'>could not {html.escape(what)}: "
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
            )
        finally:
            if outer:
                self.busy.value = ""

    def _on_batch(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("open the batch", self._open_batch, Path(change["new"]))

    def _on_track(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("open the track", self._open_track)

    def _on_selection(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("load the selection", self._refresh_selection)

    def _on_stereo(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the players", self._refresh_players)
            self._guard("prepare the A/B", self._refresh_ab_player)

    def _on_scale(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("draw the spectrograms", self._refresh_pictures)

    def _on_ab_mode(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the A/B", self._refresh_ab_player)

    def _on_ab(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the A/B", self._refresh_ab)

    def _on_metric(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("show the scores", self._refresh_metrics)

    # -- state changes

    def _open_batch(self, folder: Path) -> None:
        self.index = BatchIndex.open(folder)
        info = self.index.info
        self.header.value = (
            f"<h3 style='margin:4px 0'>stemkit explorer: <code>{html.escape(self.index.name)}"
            f"</code></h3><p style='margin:0 0 6px'>{len(self.index.tracks)} tracks × "
            f"{html.escape(', '.join(self.index.providers))}; created "
            f"{html.escape(str(info.get('created_at', '?')))[:19]}</p>"
        )
        with self._muted():
            tracks = self.index.tracks
            _set_choices(self.track, tracks, tracks[0] if tracks else None)
        self._open_track()

    def _open_track(self) -> None:
        track = self.track.value
        if track is None:
            self.status.value = "<p>This batch has no tracks.</p>"
            return
        stems = self.index.stems(track)
        duration = self.index.duration(track) or 1.0
        with self._muted():
            _set_choices(self.stem, stems, stems[0] if stems else None)
            self._set_provider_options()
            with self.time_range.hold_sync():
                if duration > self.time_range.max:
                    self.time_range.max = duration
                self.time_range.value = (0.0, min(duration, DEFAULT_SECONDS))
                self.time_range.max = max(duration, 0.1)
        self.tables = track_tables(self.index, track)
        self._refresh_tables()
        self._refresh_selection()

    def _set_provider_options(self) -> None:
        track, stem = self.track.value, self.stem.value
        have = self.index.providers_with(track, stem) if stem else []
        _set_choices(self.providers, have, tuple(have))

    def _refresh_selection(self) -> None:
        with self._muted():
            if set(self.providers.options) != set(
                self.index.providers_with(self.track.value, self.stem.value or "")
            ):
                self._set_provider_options()
        start, end = self.time_range.value
        # every provider of the stem is loaded (cached): the A/B offers them all
        self.selection = load_selection(
            self.index, self.track.value, self.stem.value, None, start=start, end=end
        )
        sel = self.selection
        if (round(start, 6), round(end, 6)) != (sel.start, sel.end) and sel.duration > 0:
            with self._muted():  # a zero-length range, widened: the slider shows what plays
                self.time_range.value = (sel.start, sel.end)
        self._set_ab_options()
        self._refresh_players()
        self._refresh_pictures()  # and the A/B one
        self._refresh_ab_player()
        self._refresh_ab_table()
        self._refresh_status()

    def _set_ab_options(self) -> None:
        sel = self.selection
        options = [p for p in self.index.providers_with(sel.track, sel.stem) if p in sel.sources]
        options += [s for s in ("reference", "mixture") if s in sel.sources]
        self.ab_note.value = (
            "<p class='stemkit-note'>A and B: every provider that delivered "
            f"{html.escape(sel.stem)} for this track (whichever are picked above), "
            "the reference and the mixture; "
            f"both play {sel.start:.1f}–{sel.end:.1f} s of the track.</p>"
        )
        with self._muted():
            a, b = self.ab_a.value, self.ab_b.value
            new_a = (a if a in options else options[0]) if options else None
            rest = [o for o in options if o != new_a] or options
            new_b = (b if b in options and b != new_a else rest[0]) if options else None
            _set_choices(self.ab_a, options, new_a)
            _set_choices(self.ab_b, options, new_b)

    def _refresh_players(self) -> None:
        from IPython.display import HTML

        from stemkit.plots import provider_color

        sel = self.selection
        self.players.outputs = ()
        played = min(sel.end, sel.start + MAX_PLAY_SECONDS)
        self.players.append_display_data(
            HTML(
                f"<p class='stemkit-note'>Each player plays {sel.start:.1f}–{played:.1f} s "
                f"of the track: its 0:00 is {sel.start:.1f} s, its "
                f"{_seconds(played - sel.start)} is {played:.1f} s.</p>"
            )
        )
        order = ["mixture", "reference", *self.providers.value]
        for name in order:
            label = f"{name} ({sel.stem})" if name not in ("mixture",) else name
            color = provider_color(name)
            self.players.append_display_data(
                HTML(f"<b style='color:{color}'>{html.escape(label)}</b>")
            )
            if name in sel.sources:
                clip = sel.clip(name, limit=MAX_PLAY_SECONDS)
                self.players.append_display_data(player(clip, sel.sr, stereo=self.stereo.value))
            else:
                why = sel.missing.get(name, "not loaded")
                self.players.append_display_data(HTML(f"<i>{html.escape(why)}</i>"))

    def _refresh_pictures(self) -> None:
        sel = self.selection
        names = ["mixture", "reference", *self.providers.value]
        panels = selection_spectrograms(sel, names, scale=self.scale.value)
        title = f"{sel.track}: mixture, reference {sel.stem} and each provider's {sel.stem}"
        self.spectrogram.value = spectrogram_png(panels, title=title)
        self._refresh_ab_picture()

    def _ab_ready(self) -> bool:
        sel, a, b = self.selection, self.ab_a.value, self.ab_b.value
        return sel is not None and bool(a and b) and a in sel.sources and b in sel.sources

    def _refresh_ab_picture(self) -> None:
        if not self._ab_ready():
            self.ab_spectrogram.value = b""
            return
        sel, a, b = self.selection, self.ab_a.value, self.ab_b.value
        panels = selection_spectrograms(sel, [a, b], scale=self.scale.value)
        labelled = {f"{a}\n(A)": panels[a], f"{b}\n(B)": panels[b]}
        title = f"{sel.track}, {sel.stem}: A = {a}, B = {b}"
        self.ab_spectrogram.value = spectrogram_png(labelled, title=title)

    def _refresh_ab_player(self) -> None:
        from IPython.display import HTML

        self.ab_player.outputs = ()
        if not self._ab_ready():
            self.ab_player.append_display_data(HTML("<i>A/B needs two sources of this stem.</i>"))
            return
        segment = 2.0 if self.ab_mode.value == "alternate" else None
        pair = ab_pair(self.selection, self.ab_a.value, self.ab_b.value, segment=segment)
        self.ab_player.append_display_data(HTML(f"<p>{html.escape(pair.description)}</p>"))
        self.ab_player.append_display_data(player(pair.clip, pair.sr, stereo=self.stereo.value))

    def _refresh_ab_table(self) -> None:
        metrics = self.tables.metrics if self.tables is not None else pd.DataFrame()
        head = (
            "<h4>Scores of the whole track</h4><p class='stemkit-note'>From the analysis "
            "of the full track, not of the range playing above.</p>"
        )
        if not self._ab_ready() or metrics.empty:
            self.ab_table.value = _STYLE + head + _table_html(None, "No scores for these two yet.")
            return
        table = ab_metrics(metrics, self.selection.stem, self.ab_a.value, self.ab_b.value)
        self.ab_table.value = _STYLE + head + _table_html(table, "No scores for these two yet.")

    def _refresh_ab(self) -> None:
        self._refresh_ab_player()
        self._refresh_ab_table()
        self._refresh_ab_picture()

    def _refresh_tables(self) -> None:
        t = self.tables
        choices = metric_choices(t.metrics)
        with self._muted():
            keep = self.metric.value
            _set_choices(
                self.metric, choices, keep if keep in choices else (choices[0] if choices else None)
            )
        self._refresh_metrics()
        if t.timeline.empty:
            self.timeline.value = b""
            self.timeline_table.value = _table_html(None, "No timeline for this track.")
        else:
            self.timeline.value = timeline_png(t.timeline, title=f"{t.track}: job timeline")
            stages = stage_seconds(t.timeline)
            differ = stages[(stages["wall (s)"] - stages["summed (s)"]).abs() > 0.0005]
            note = (
                "<p class='stemkit-note'><b>wall</b>: the time the stage spanned, parallel jobs "
                "counted once (as the chart draws them); <b>summed</b>: every job's seconds "
                "added (the work done or waited for).</p>"
            )
            if not differ.empty:
                where = ", ".join(f"{p} {s}" for p, s in differ.index)
                note += (
                    f"<p class='stemkit-note'>They differ where jobs overlap: "
                    f"{html.escape(where)}.</p>"
                )
            self.timeline_table.value = (
                _STYLE + "<h4>Seconds per stage</h4>" + note + _table_html(stages, "")
            )

    def _refresh_metrics(self) -> None:
        t = self.tables
        if t is None:
            return
        name = self.metric.value
        parts = [_STYLE, "<div class='stemkit-scroll'>"]
        if name:
            parts.append(f"<h4>{html.escape(name)}: providers side by side</h4>")
            parts.append(_table_html(metric_table(t.metrics, name), ""))
        else:
            parts.append(_table_html(None, "No metrics for this track yet (run the analyze step)."))
        if t.verdicts is not None:
            shown = flagged_verdicts(t.verdicts, passes=self.passes.value)
            total = len(t.verdicts)
            passed = int((t.verdicts["verdict"].astype(str) == "pass").sum()) if total else 0
            head = f"{total} checks, {passed} passed" + (
                "" if self.passes.value else f"; {total - passed} not passed, shown here"
            )
            parts += [
                "<h4>Verdicts</h4>",
                f"<p class='stemkit-note'>{html.escape(head)}</p>",
                _table_html(
                    shown.set_index(shown.columns[0]) if not shown.empty else shown,
                    "Every check passed." if total else "verdicts.csv is empty.",
                ),
            ]
        parts += ["<h4>Jobs</h4>", _table_html(t.jobs.set_index("provider"), "No jobs.")]
        if not t.intelligibility.empty:
            cols = [
                c
                for c in ("source", "stem", "wer", "is_blank", "state", "text")
                if c in t.intelligibility
            ]
            wer = t.intelligibility[cols].set_index("source")
            parts += ["<h4>Intelligibility (word error rate)</h4>", _table_html(wer, "")]
        self.metrics.value = "".join(parts) + "</div>"

    def _refresh_status(self) -> None:
        sel = self.selection
        self.range_label.value = f"{sel.start:.1f} – {sel.end:.1f} s of {sel.duration:.1f} s"
        played = min(sel.end, sel.start + MAX_PLAY_SECONDS) - sel.start
        note = f"players: {played:.1f} s at {sel.sr} Hz" + (
            f" (first {MAX_PLAY_SECONDS:.0f} s of the range)"
            if played < sel.end - sel.start
            else ""
        )
        missing = "; ".join(f"{k}: {v}" for k, v in sel.missing.items())
        lines = [self.notice, note] + ([f"missing: {missing}"] if missing else [])
        self.status.value = (
            "<p style='color:#555'>" + "<br>".join(html.escape(x) for x in lines if x) + "</p>"
        )


def explore(batch_dir: str | os.PathLike = "../reports/demo") -> Any:
    """The explorer widget for ``batch_dir``, or for the newest batch beside it when that
    folder is not a batch; a message widget (never an exception) when there is no batch.

    Examples
    --------
    >>> explore("/nonexistent/demo").value.startswith("<p>No batch to explore")
    True
    """
    import ipywidgets as W

    folder = resolve_batch(batch_dir)
    if folder is None:
        where = html.escape(str(batch_dir))
        return W.HTML(f"<p>{NO_BATCH.format(where=f'<code>{where}</code>')}</p>")
    try:
        return Explorer(batch_dir).widget
    except Exception as exc:  # noqa: BLE001 - a notebook cell shows the reason instead
        return W.HTML(
            f"<p>Could not open {html.escape(str(folder))}: "
            f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
        )
