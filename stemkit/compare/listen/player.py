"""A gapless stimulus player for notebooks: Web Audio in the browser, driven from Python.

:class:`StimulusPlayer` (an `anywidget <https://anywidget.dev>`_ widget) gets every stimulus
of a trial (``sources``: name -> base64 FLAC), decodes them into Web Audio buffers on the first
play and starts them together, looped; setting ``playing`` only moves the gains (a 5 ms
cross-fade), so switching between the reference and the stimuli is gapless and in sync, as on
the static page (:mod:`.page`). ``playing = ""`` stops.

Examples
--------
>>> p = StimulusPlayer(sources={"reference": "", "a1b2c3": ""})
>>> p.playing = "a1b2c3"
>>> p.loop
True
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["StimulusPlayer"]

_ESM = r"""
function bytes(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}
function render({ model, el }) {
  let ctx = null, buffers = null, sources = null, gains = {}, generation = 0;
  const status = document.createElement("span");
  status.style.color = "#666";
  el.appendChild(status);
  const stop = () => {
    if (sources) for (const s of Object.values(sources)) { s.onended = null; s.stop(); }
    sources = null; status.textContent = "";
  };
  const start = () => {
    const t0 = ctx.currentTime + 0.05, loop = model.get("loop");
    sources = {}; gains = {};
    for (const [n, buf] of Object.entries(buffers)) {
      const src = ctx.createBufferSource(), g = ctx.createGain();
      src.buffer = buf; src.loop = loop; g.gain.value = 0;
      src.connect(g).connect(ctx.destination); src.start(t0);
      sources[n] = src; gains[n] = g;
    }
    const mine = sources, first = Object.values(sources)[0];
    if (first) first.onended = () => { if (sources === mine) stop(); };
  };
  const apply = async () => {
    const name = model.get("playing");
    if (!name) { stop(); return; }
    ctx = ctx || new AudioContext();
    await ctx.resume();
    if (!buffers) {
      const mine = ++generation, out = {};
      status.textContent = "loading…";
      for (const [n, b64] of Object.entries(model.get("sources"))) {
        out[n] = await ctx.decodeAudioData(bytes(b64));
        if (mine !== generation) return;
      }
      buffers = out;
    }
    if (!sources) start();
    const t = ctx.currentTime;
    for (const [n, g] of Object.entries(gains)) {
      g.gain.cancelScheduledValues(t);
      g.gain.setTargetAtTime(n === name ? 1 : 0, t, 0.005);
    }
    status.textContent = "playing";
  };
  model.on("change:sources", () => { generation++; buffers = null; stop(); });
  model.on("change:playing", apply);
  model.on("change:loop", () => { if (sources) { stop(); apply(); } });
  return () => { stop(); if (ctx) ctx.close(); };
}
export default { render };
"""


class StimulusPlayer(anywidget.AnyWidget):
    """Every stimulus of a trial, played together and switched gaplessly (see the module).

    Attributes
    ----------
    sources : dict of str to str
        Stimulus name -> base64 audio (any format the browser decodes; FLAC here).
    playing : str
        The stimulus heard; ``""`` stops.
    loop : bool
        Loop the excerpts (default True).
    """

    _esm = _ESM
    sources = traitlets.Dict().tag(sync=True)
    playing = traitlets.Unicode("").tag(sync=True)
    loop = traitlets.Bool(True).tag(sync=True)
