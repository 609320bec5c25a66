"""The MUSHRA test in a notebook: an ipywidgets page per trial, results in the tidy format.

One trial a page: a "Reference" button and one per stimulus (A, B, ...) that play it looped,
a slider 0-100 per stimulus, a comment box, Previous / Next (Next once every stimulus is
rated), a progress bar, and "Save results" at the end, which writes
``listening/results/widget-<listener>.csv`` (:data:`.results.COLUMNS`).

The audio plays in a :class:`.player.StimulusPlayer` (Web Audio, as on the static page): every
stimulus of the trial runs together, looped, and a button only switches which one is heard,
so switching is gapless and in sync; "Stop" and "loop" as on the page.

Examples
--------
>>> w = MushraWidget("reports/demo", listener="ana")     # doctest: +SKIP
>>> w                                                   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import ipywidgets as W
import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.compare.listen.design import public_trials
from stemkit.compare.listen.player import StimulusPlayer
from stemkit.compare.listen.results import COLUMNS

__all__ = ["MushraWidget"]

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class MushraWidget(W.VBox):
    """A MUSHRA test of a batch's designed test, one trial a page.

    Parameters
    ----------
    folder : path or BatchFolder
        A batch folder with a designed test.
    listener : str
        Who takes the test (a name or a code).
    clock : callable, optional
        Seconds now (default :func:`time.monotonic`); tests pass their own.

    Attributes
    ----------
    index : int
        The trial shown (0-based).
    sliders : dict of str to ipywidgets.IntSlider
        The sliders of the trial shown, by blinded stimulus name.
    """

    def __init__(self, folder: str | Path | BatchFolder, listener: str, *, clock=time.monotonic):
        self.folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
        self.trials = public_trials(self.folder)  # never the key: a listener may look
        self.listener = listener
        self._clock = clock
        self.index = 0
        self.ratings: dict[str, dict[str, int]] = {}
        self.comments: dict[str, str] = {}
        self.times: dict[str, float] = {}
        self._shown_at: float | None = None
        self.progress = W.IntProgress(min=0, max=len(self.trials))
        self.title = W.HTML()
        self.player = StimulusPlayer()
        self.stop = W.Button(description="Stop")
        self.stop.on_click(lambda _: self.play(""))
        self.loop = W.Checkbox(value=True, description="loop")
        W.link((self.loop, "value"), (self.player, "loop"))
        self.buttons = W.HBox()
        self.rows = W.VBox()
        self.comment = W.Textarea(placeholder="Comment (optional)")
        self.prev = W.Button(description="Previous")
        self.next = W.Button(description="Next", button_style="primary")
        self.hint = W.HTML()
        self.save_button = W.Button(description="Save results", button_style="success")
        self.saved_to: Path | None = None
        self.prev.on_click(lambda _: self._go(-1))
        self.next.on_click(lambda _: self._go(+1))
        self.save_button.on_click(lambda _: self.save())
        self.sliders: dict[str, W.IntSlider] = {}
        super().__init__(
            [
                self.title,
                self.progress,
                self.player,
                W.HBox([self.buttons, self.stop, self.loop]),
                self.rows,
                self.comment,
                W.HBox([self.prev, self.next, self.hint]),
            ]
        )
        self._show()

    # -- one trial --------------------------------------------------------------------------------

    @property
    def trial(self) -> dict:
        """The trial shown: ``trial, stem, stimuli``."""
        return self.trials[self.index]

    @property
    def playing(self) -> str:
        """The stimulus heard (``"reference"`` or a blinded name); ``""`` when stopped."""
        return self.player.playing

    def play(self, name: str) -> None:
        """Switch to ``name`` (``"reference"`` or a blinded stimulus); ``""`` stops."""
        self.player.playing = name

    def _show(self) -> None:
        t = self.trial
        tid = t["trial"]
        self.ratings.setdefault(tid, {})
        n = len(self.trials)
        self.title.value = f"<h3>Trial {self.index + 1} of {n}</h3><p>Stem: <b>{t['stem']}</b></p>"
        self.progress.value = self.index
        self.player.playing = ""
        self.player.sources = {
            n: base64.b64encode(self.folder.stimulus_path(tid, n).read_bytes()).decode()
            for n in ["reference", *t["stimuli"]]
        }
        ref = W.Button(description="Reference")
        ref.on_click(lambda _: self.play("reference"))
        self.sliders = {}
        rows, plays = [], [ref]
        for i, name in enumerate(t["stimuli"]):
            b = W.Button(description=LABELS[i], layout=W.Layout(width="3em"))
            b.on_click(lambda _, name=name: self.play(name))
            plays.append(b)
            s = W.IntSlider(
                value=self.ratings[tid].get(name, 0), min=0, max=100, description=LABELS[i]
            )
            s.observe(lambda ch, name=name: self._rate(name, ch["new"]), names="value")
            self.sliders[name] = s
            rows.append(s)
        self.buttons.children = plays
        self.rows.children = rows
        self.comment.value = self.comments.get(tid, "")
        self._shown_at = self._clock()
        self._nav()

    def _rate(self, name: str, value: int) -> None:
        self.ratings[self.trial["trial"]][name] = int(value)
        self._nav()

    def rate(self, scores: dict[str, int]) -> None:
        """Set sliders of the trial shown (blinded name -> 0-100), as a listener would."""
        for name, value in scores.items():
            self.sliders[name].value = int(value)
            self._rate(name, int(value))  # also when the slider already shows that value

    @property
    def rated(self) -> bool:
        """True when every stimulus of the trial shown has a score."""
        return set(self.trial["stimuli"]) <= set(self.ratings.get(self.trial["trial"], {}))

    def _nav(self) -> None:
        last = self.index == len(self.trials) - 1
        self.prev.disabled = self.index == 0
        self.next.disabled = not self.rated
        self.next.description = "Finish" if last else "Next"
        self.hint.value = "" if self.rated else "Rate every stimulus to go on."

    def _leave(self) -> None:
        tid = self.trial["trial"]
        if self._shown_at is not None:
            self.times[tid] = self.times.get(tid, 0.0) + self._clock() - self._shown_at
        self.comments[tid] = self.comment.value

    def _go(self, step: int) -> None:
        if step > 0 and not self.rated:
            return
        self._leave()
        if step > 0 and self.index == len(self.trials) - 1:
            self.progress.value = self.progress.max
            self.title.value = "<h3>Done: save your results.</h3>"
            self.player.playing = ""
            self.buttons.children, self.rows.children = (), ()
            self.children = (self.title, self.progress, self.save_button)
            return
        self.index = max(0, self.index + step)
        self._show()

    # -- results ----------------------------------------------------------------------------------

    def results(self) -> pd.DataFrame:
        """The ratings so far in the tidy format (:data:`.results.COLUMNS`)."""
        rows = [
            {
                "listener": self.listener,
                "trial": t["trial"],
                "stimulus": n,
                "score": self.ratings[t["trial"]][n],
                "time_s": round(self.times.get(t["trial"], 0), 1),
                "comment": self.comments.get(t["trial"], ""),
            }
            for t in self.trials
            for n in t["stimuli"]
            if n in self.ratings.get(t["trial"], {})
        ]
        return pd.DataFrame(rows, columns=COLUMNS)

    def save(self) -> Path:
        """Write the results to ``listening/results/widget-<listener>.csv``."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.listener)
        path = self.folder.listening_results_dir / f"widget-{safe}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.results().to_csv(path, index=False)
        self.saved_to = path
        self.title.value = f"<h3>Saved: {path.name}</h3>"
        return path
