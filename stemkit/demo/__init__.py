"""Demo data: synthesised multitracks (:mod:`~stemkit.demo.synth`) and speech-over-music tracks
with scripts (:mod:`~stemkit.demo.speech`), written by ``stemkit demo-data``."""
