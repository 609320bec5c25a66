"""Reference-free QA of separated stems, judged against a QA profile.

:func:`stem_checks` measures every stem of one provider's result for one track against the
mixture that was sent (:func:`check_stems`: the same, read from files block by block, in flat
memory); :func:`job_checks` turns the job's timing summary row into the same kind
of rows. Every row is tidy: ``{"stem", "check", "value", "unit", "detail"}`` (the caller adds
``provider`` and ``track``). :func:`verdicts` judges each row against a profile
(:func:`load_profile`: the packaged ``profile.toml``, a batch file merged over it) and
:func:`summary_verdicts` keeps the worst verdict per provider x track x stem, with what failed
and by how much: the table a report opens with.

========================  =====  =================================================================
check                     unit   what it measures
========================  =====  =================================================================
``recon_db``              dB     energy of mixture - sum of stems, re the mixture (stem ``(all)``)
``duration_diff_s``       s      stem duration - input duration
``sample_rate_match``            1 if the stem's rate equals the input's
``channels_match``               1 if the stem's channel count equals the input's
``clip_pct``              %      share of samples with ``|x| >= 0.999``
``sample_peak_dbfs``      dBFS   largest ``|x|``
``true_peak_dbtp``        dBTP   largest ``|x|`` of the 4x oversampled signal
``silent``                dBFS   RMS of the loudest 400 ms window (all channels)
``lufs``                  LUFS   integrated loudness, ITU-R BS.1770-4 (NaN for silence)
``dc_offset``             FS     largest ``|mean|`` over channels (full scale = 1)
``offset_ms``             ms     lag of the stem against the mixture (+ = stem late)
``polarity``              corr   min over channels of corr(stem ch, mixture ch) at that lag
``channel_swap``          corr   corr(stem side, mixture side) x sign of the mids', stereo only
``dialogue_bak``          MOS    DNSMOS P.835 BAK of a dialogue stem: music / noise left in it
``music_in_dialogue_db``  dB     a dialogue stem's level in its pauses (VAD) re in speech
``speech_in_music_pct``   %      share of a music_fx / accompaniment stem the VAD calls speech
``processing_s``          s      vendor processing time (:func:`job_checks`)
``rtf``                   x      processing / audio duration (:func:`job_checks`)
``end_to_end_s``          s      submit to download (:func:`job_checks`)
========================  =====  =================================================================

:func:`integrated_loudness` and :func:`true_peak` are the BS.1770 meters behind ``lufs`` and
``true_peak_dbtp``; :func:`judge` is the rule of one row.

Modules: :mod:`~stemkit.analyze.qa.meters` (BS.1770 meters), :mod:`~stemkit.analyze.qa.checks`
(the measurements), :mod:`~stemkit.analyze.qa.profile` (thresholds),
:mod:`~stemkit.analyze.qa.verdicts` (judging).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stems = {k: 0.1 * rng.standard_normal((2, 8000)).astype(np.float32) for k in ("a", "b")}
>>> mix = stems["a"] + stems["b"]
>>> rows = pd.DataFrame(stem_checks(mix, stems, 8000))
>>> v = verdicts(rows, load_profile())
>>> sorted(set(v["verdict"]))
['pass']
>>> stems["b"] = -stems["b"]                       # polarity-inverted stem
>>> v = verdicts(pd.DataFrame(stem_checks(mix, stems, 8000)), load_profile())
>>> summary_verdicts(v)[["stem", "verdict"]].head(2).to_dict("records")
[{'stem': '(all)', 'verdict': 'fail'}, {'stem': 'b', 'verdict': 'fail'}]
"""

from __future__ import annotations

import pandas as pd  # noqa: F401  (the examples above use it)

from stemkit.analyze.qa.checks import ALL, JOB, StemAudio, check_stems, job_checks, stem_checks
from stemkit.analyze.qa.meters import integrated_loudness, true_peak
from stemkit.analyze.qa.profile import SEVERITY, load_profile
from stemkit.analyze.qa.verdicts import judge, summary_verdicts, verdicts

__all__ = [
    "ALL",
    "JOB",
    "SEVERITY",
    "StemAudio",
    "check_stems",
    "integrated_loudness",
    "job_checks",
    "judge",
    "load_profile",
    "stem_checks",
    "summary_verdicts",
    "true_peak",
    "verdicts",
]
