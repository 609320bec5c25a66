"""The compare phase: every track's analysis together.

* :mod:`~stemkit.compare.report`: the batch's tables and the HTML report;
* :mod:`~stemkit.compare.explore`: the interactive explorer (data, widgets);
* :mod:`~stemkit.compare.stats`: paired statistics between providers;
* :mod:`~stemkit.compare.listen`: blind MUSHRA listening tests and their analysis.
"""
