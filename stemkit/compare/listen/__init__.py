"""Listening tests of a batch: a blind MUSHRA test (ITU-R BS.1534-3) and its analysis.

The round trip, every file under the batch folder's ``listening/`` (see
:class:`stemkit.batchdir.BatchFolder`):

* :mod:`~stemkit.compare.listen.design`: pick items, cut loudness-matched excerpts of every
  provider's stem, the hidden reference and the anchors, blind their names; the key apart;
* :mod:`~stemkit.compare.listen.page`: the static offline MUSHRA page (Chromium, no network);
* :mod:`~stemkit.compare.listen.widget`: the same test in a notebook (ipywidgets);
* :mod:`~stemkit.compare.listen.results`: one tidy results format, webMUSHRA CSV import and
  YAML export;
* :mod:`~stemkit.compare.listen.analysis`: post-screening, means with CIs, paired statistics,
  and the agreement between metrics and listeners; the report's "Listening test" section.
"""
