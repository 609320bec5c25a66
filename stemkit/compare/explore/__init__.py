"""Explore a batch by ear and by eye: players, spectrograms, a quick A/B, scores, timelines.

``notebooks/explore.ipynb`` is two cells around :func:`explore`. The logic below it
(:mod:`~stemkit.compare.explore.data`) is plain functions on a batch folder, tested without a
browser; :mod:`~stemkit.compare.explore.widgets` wires them to ipywidgets:

* finding batches: :func:`list_batches`, :func:`resolve_batch`;
* what a batch holds: :class:`BatchIndex` (tracks, providers, each provider's stem files);
* audio for a selection: :func:`load_selection` (mixture, reference, each provider's stem, at
  :data:`PLAYER_SR`, cached), :func:`player` (16-bit WAV for ``IPython.display.Audio``);
* pictures: :func:`spectrogram` (linear, log or mel frequency, a time range, at most a few
  hundred rows × columns), :func:`spectrogram_png`, :func:`timeline_png`;
* comparisons: :func:`ab_pair` (A then B, or A and B alternating, in track time),
  :func:`ab_metrics`;
* a track's tables: :func:`track_tables` (metrics, timeline, jobs, WER, and ``verdicts.csv``
  when the analysis wrote one); one metric with the providers side by side
  (:func:`metric_table`, names from :func:`metric_name`), the verdicts that did not pass
  (:func:`flagged_verdicts`), seconds per stage as wall span and summed work
  (:func:`stage_seconds`).

Nothing here writes into the batch folder.

Examples
--------
>>> from stemkit.compare.explore import explore
>>> explore("../reports/demo")     # the last line of a notebook cell    # doctest: +SKIP
"""

from stemkit.compare.explore.data import (  # noqa: F401  (the names tests and notebooks use)
    DEFAULT_SECONDS,
    MAX_PLAY_SECONDS,
    METRIC_NAMES,
    MIN_SECONDS,
    NO_BATCH,
    PLAYER_SR,
    SCALES,
    ABPair,
    BatchIndex,
    Selection,
    Spectrogram,
    TrackTables,
    ab_metrics,
    ab_pair,
    band_edges,
    clamp_range,
    flagged_verdicts,
    is_batch,
    list_batches,
    load_at,
    load_selection,
    metric_choices,
    metric_name,
    metric_table,
    named_metrics,
    player,
    resolve_batch,
    selection_spectrograms,
    spectrogram,
    spectrogram_png,
    stage_seconds,
    timeline_png,
    track_tables,
)
from stemkit.compare.explore.widgets import Explorer, explore  # noqa: F401
