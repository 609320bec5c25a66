"""The static MUSHRA page: one folder a listener opens in a browser, offline.

``listening/page/index.html`` holds the test (trials, blinded names, no condition) and the
player; ``listening/page/trials/<trial>.js`` holds each trial's audio (FLAC, base64), loaded
with a ``<script>`` tag when the trial opens, so the page works from ``file://`` with nothing
fetched. ``single_file=True`` puts everything in ``index.html`` instead.

The player decodes every stimulus of a trial into Web Audio buffers and starts them together,
looped; the buttons only move the gains (a 5 ms cross-fade), so switching between the
reference and the stimuli is gapless and in sync. One trial a page, sliders 0-100 (every
stimulus must be rated before the next trial), a comment, progress, and at the end a "Save
results" button that downloads a CSV in the tidy format (:mod:`.results`). Progress is kept in
the browser's local storage, so a reload resumes.

Examples
--------
>>> write_page("reports/demo")          # doctest: +SKIP
PosixPath('.../reports/demo/listening/page/index.html')
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import shutil
from pathlib import Path

from stemkit.batchdir import BatchFolder

__all__ = ["write_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 860px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.4em; } .muted { color: #666; }
button { font-size: 1em; padding: .35em .9em; margin: .15em; cursor: pointer; }
button.playing { background: #2b6cb0; color: white; }
.row { display: flex; align-items: center; gap: 1em; margin: .4em 0; }
.row input[type=range] { flex: 1; } .row output { width: 3em; text-align: right; }
progress { width: 100%; } textarea { width: 100%; height: 3em; }
.hidden { display: none; }
"""

_SCRIPT = r"""
"use strict";
const AUDIO = {};
window.stemkitRegister = (tid, data) => { AUDIO[tid] = data; };
const STORE = "stemkit-mushra:" + TEST.id;
const LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const $ = (id) => document.getElementById(id);
let state = JSON.parse(localStorage.getItem(STORE) || "null") ||
  {listener: "", index: 0, ratings: {}, comments: {}, times: {}};
let ctx = null, player = null, shownAt = null;
const save = () => localStorage.setItem(STORE, JSON.stringify(state));

function loadTrial(tid) {
  if (AUDIO[tid]) return Promise.resolve();
  return new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = "trials/" + tid + ".js";
    s.onload = () => ok();
    s.onerror = () => fail(new Error("could not load trials/" + tid + ".js"));
    document.head.appendChild(s);
  });
}
function bytes(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}
class Player {
  constructor(buffers) { this.buffers = buffers; this.sources = null; this.current = null; }
  play(name) {
    if (!this.sources) this.start();
    const t = ctx.currentTime;
    for (const [n, g] of Object.entries(this.gains)) {
      g.gain.cancelScheduledValues(t);
      g.gain.setTargetAtTime(n === name ? 1 : 0, t, 0.005);
    }
    this.current = name; window.stemkitPage.playing = name; markPlaying();
  }
  start() {
    const t0 = ctx.currentTime + 0.05, loop = $("loop").checked;
    this.sources = {}; this.gains = {};
    for (const [n, buf] of Object.entries(this.buffers)) {
      const src = ctx.createBufferSource(), g = ctx.createGain();
      src.buffer = buf; src.loop = loop; g.gain.value = 0;
      src.connect(g).connect(ctx.destination);
      src.start(t0); this.sources[n] = src; this.gains[n] = g;
    }
    const first = Object.values(this.sources)[0];
    const mine = this.sources;
    first.onended = () => { if (this.sources === mine) this.stop(); };
  }
  stop() {
    if (this.sources) for (const s of Object.values(this.sources)) { s.onended = null; s.stop(); }
    this.sources = null; this.current = null; window.stemkitPage.playing = null; markPlaying();
  }
}
// what the page is doing, for a person in the console and for the browser test
window.stemkitPage = {playing: null, trial: null, ready: false, saved: false,
  audio: () => (ctx ? {state: ctx.state, time: ctx.currentTime,
                       voices: player && player.sources ? Object.keys(player.sources).length : 0}
                    : null)};

function markPlaying() {
  document.querySelectorAll("button[data-play]").forEach((b) =>
    b.classList.toggle("playing", player && b.dataset.play === player.current));
}
function leaveTrial() {
  const tid = TEST.trials[state.index].trial;
  if (shownAt !== null) state.times[tid] = (state.times[tid] || 0) +
    (performance.now() - shownAt) / 1000;
  shownAt = null;
  state.comments[tid] = $("comment").value;
  if (player) player.stop();
  save();
}
function rated(tid) {
  const r = state.ratings[tid] || {};
  return TEST.trials[state.index].stimuli.every((n) => n in r);
}
async function showTrial() {
  const trial = TEST.trials[state.index], tid = trial.trial;
  window.stemkitPage.ready = false; window.stemkitPage.trial = tid;
  $("progress-text").textContent = `Trial ${state.index + 1} of ${TEST.trials.length}`;
  $("progress").value = state.index; $("progress").max = TEST.trials.length;
  $("stem").textContent = trial.stem;
  $("comment").value = state.comments[tid] || "";
  const box = $("stimuli"); box.innerHTML = "";
  state.ratings[tid] = state.ratings[tid] || {};
  trial.stimuli.forEach((name, i) => {
    const row = document.createElement("div"); row.className = "row";
    const b = document.createElement("button");
    b.textContent = LABELS[i]; b.dataset.play = name; b.onclick = () => player && player.play(name);
    const s = document.createElement("input");
    s.type = "range"; s.min = 0; s.max = 100; s.step = 1; s.dataset.stimulus = name;
    s.setAttribute("aria-label", "score of " + LABELS[i]);
    const o = document.createElement("output");
    const v = state.ratings[tid][name];
    s.value = v === undefined ? 0 : v; o.textContent = v === undefined ? "–" : v;
    s.oninput = () => { state.ratings[tid][name] = Number(s.value); o.textContent = s.value;
                        save(); updateNav(); };
    row.append(b, s, o); box.appendChild(row);
  });
  updateNav();
  $("status").textContent = "loading audio…";
  await loadTrial(tid);
  const buffers = {};
  for (const [n, b64] of Object.entries(AUDIO[tid])) {
    buffers[n] = await ctx.decodeAudioData(bytes(b64));
  }
  if (TEST.trials[state.index].trial !== tid) return;
  player = new Player(buffers);
  shownAt = performance.now();
  $("status").textContent = "";
  window.stemkitPage.ready = true;
}
function updateNav() {
  const tid = TEST.trials[state.index].trial;
  $("prev").disabled = state.index === 0;
  $("next").disabled = !rated(tid);
  $("next").textContent = state.index === TEST.trials.length - 1 ? "Finish" : "Next";
  $("hint").textContent = rated(tid) ? "" : "Rate every stimulus to go on.";
}
function csvCell(x) {
  const s = String(x);
  return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function resultsCsv() {
  const lines = ["listener,trial,stimulus,score,time_s,comment"];
  for (const t of TEST.trials) {
    const r = state.ratings[t.trial] || {};
    const time = (state.times[t.trial] || 0).toFixed(1), note = state.comments[t.trial] || "";
    for (const n of t.stimuli) {
      if (n in r) lines.push([state.listener, t.trial, n, r[n], time, note].map(csvCell).join(","));
    }
  }
  return lines.join("\n") + "\n";
}
function finish() {
  $("test").classList.add("hidden"); $("done").classList.remove("hidden");
}
function download() {
  const blob = new Blob([resultsCsv()], {type: "text/csv"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `mushra-${TEST.id}-${state.listener.replace(/[^\w.-]+/g, "_")}.csv`;
  document.body.appendChild(a); a.click(); a.remove();
  window.stemkitPage.saved = true;
}
function startTest() {
  const who = $("listener").value.trim();
  if (!who) { $("listener-hint").textContent = "Type your name or a code first."; return; }
  if (who !== state.listener) {
    state = {listener: who, index: 0, ratings: {}, comments: {}, times: {}};
  }
  ctx = ctx || new AudioContext(); ctx.resume();
  save();
  $("intro").classList.add("hidden"); $("test").classList.remove("hidden");
  showTrial().catch((e) => { $("status").textContent = String(e); console.error(e); });
}
window.addEventListener("DOMContentLoaded", () => {
  $("listener").value = state.listener;
  $("start").onclick = startTest;
  $("ref").onclick = () => player && player.play("reference");
  $("stop").onclick = () => player && player.stop();
  $("loop").onchange = () => { if (player && player.sources) { const c = player.current;
    player.stop(); player.play(c); } };
  $("prev").onclick = () => { leaveTrial(); state.index--; save(); showTrial(); };
  $("next").onclick = () => {
    leaveTrial();
    if (state.index === TEST.trials.length - 1) { finish(); return; }
    state.index++; save(); showTrial();
  };
  $("save").onclick = download;
  $("back").onclick = () => {
    $("done").classList.add("hidden"); $("test").classList.remove("hidden"); showTrial();
  };
});
"""

_BODY = """
<h1>{title}</h1>
<section id="intro">
  <p>You will hear a <b>reference</b> and several versions of it in each of {n} trials. Rate
  how close each version is to the reference, from 0 (bad) to 100 (excellent). One of the
  versions is the reference itself: rate it 100 when you find it. Switch freely while the audio
  plays; use headphones in a quiet room.</p>
  <p><label>Your name or code: <input id="listener" autocomplete="off"></label>
  <button id="start">Start</button> <span id="listener-hint" class="muted"></span></p>
</section>
<section id="test" class="hidden">
  <p id="progress-text"></p><progress id="progress" value="0" max="1"></progress>
  <p>Stem: <b id="stem"></b> <span id="status" class="muted"></span></p>
  <p><button id="ref" data-play="reference">Reference</button>
     <button id="stop">Stop</button>
     <label><input type="checkbox" id="loop" checked> loop</label></p>
  <div id="stimuli"></div>
  <p class="muted">0–20 bad · 20–40 poor · 40–60 fair · 60–80 good · 80–100 excellent</p>
  <p><label>Comment (optional)<br><textarea id="comment"></textarea></label></p>
  <p><button id="prev">Previous</button> <button id="next">Next</button>
     <span id="hint" class="muted"></span></p>
</section>
<section id="done" class="hidden">
  <p>Thank you. Save your results and send the file to the person who runs the test.</p>
  <p><button id="save">Save results</button> <button id="back">Back</button></p>
</section>
"""


def _trial_script(folder: BatchFolder, trial: dict) -> str:
    names = ["reference", *trial["stimuli"]]
    data = {
        n: base64.b64encode(folder.stimulus_path(trial["trial"], n).read_bytes()).decode()
        for n in names
    }
    return f"stemkitRegister({json.dumps(trial['trial'])}, {json.dumps(data)});\n"


def write_page(folder: str | Path | BatchFolder, *, single_file: bool = False) -> Path:
    """Write the static MUSHRA page of the designed test to ``listening/page/``.

    Parameters
    ----------
    folder : path or BatchFolder
        A batch folder with a designed test (:func:`.design.design_test`).
    single_file : bool
        Put every trial's audio in ``index.html`` (one file to send; large).

    Returns
    -------
    Path
        ``listening/page/index.html``.
    """
    from stemkit.compare.listen.design import Design

    folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
    design = Design.load(folder)
    out = folder.listening_page_dir
    shutil.rmtree(out, ignore_errors=True)
    (out / "trials").mkdir(parents=True)
    test = {
        "id": folder.root.name,
        "trials": [{k: t[k] for k in ("trial", "stem", "stimuli")} for t in design.trials],
    }
    inline = ""
    for t in design.trials:
        script = _trial_script(folder, t)
        if single_file:
            inline += f"<script>{script}</script>\n"
        else:
            (out / "trials" / f"{t['trial']}.js").write_text(script)
    if single_file:
        (out / "trials").rmdir()
    title = html_lib.escape(f"Listening test: {folder.root.name}")
    html = (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n"
        f"<script>const TEST = {json.dumps(test)};</script>\n"
        f"<script>{_SCRIPT}</script>\n{inline}</head><body>\n"
        + _BODY.format(title=title, n=len(design.trials))
        + "</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
