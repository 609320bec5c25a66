"""The analyze phase: one track at a time, as soon as its jobs have ended.

* :mod:`~stemkit.analyze.sdr`, :mod:`~stemkit.analyze.bsseval`, :mod:`~stemkit.analyze.metrics`:
  reference metrics (global SDR and SI-SDR; BSS Eval v4 as museval computes it; scoring);
* :mod:`~stemkit.analyze.bracket`: the SiSEC bracket (oracle IRM, DSP baseline, mixture);
* :mod:`~stemkit.analyze.qa`: reference-free checks, the QA profile, verdicts;
* :mod:`~stemkit.analyze.intelligibility`: word error rate of the transcribed speech;
* :mod:`~stemkit.analyze.track`: the analysis of one track, in named steps.
"""
