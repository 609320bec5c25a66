"""The separate phase: every track of a manifest × every provider, submitted, waited on and
downloaded; then the speech of tracks with a script, transcribed.

* :mod:`~stemkit.separate.manifest`: what a batch is made of (MUSDB18 folder or CSV);
* :mod:`~stemkit.separate.ledger`: what was uploaded, submitted and downloaded (never pay twice);
* :mod:`~stemkit.separate.run`: the concurrent, resumable separate phase;
* :mod:`~stemkit.separate.transcribe`: the transcription of the speech stems.
"""
