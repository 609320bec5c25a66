"""Interactive tables in the report: sortable, searchable, paged (``itables``, offline).

A batch of a thousand tracks has tables of thousands of rows (the track table, the flagged
stems, the failures); printed whole they make a page no one reads, cut short they hide rows.
These tables are shown with `itables <https://mwouts.github.io/itables/>`_ (DataTables) in
**offline mode**: :func:`init_tables` embeds the DataTables bundle in the notebook once (no
CDN: the report opens without a network), and :func:`interactive_table` shows a table with
every row in it, paged, sortable by any column and filtered by the search box.

Cells are escaped here (``allow_html`` is on so that links can be cells): pass the columns
that hold HTML you built yourself as ``html_columns``.

Examples
--------
>>> import pandas as pd
>>> html = table_html(pd.DataFrame({"track": ["<a>"], "sdr": [1.25]}), table_id="t")
>>> "&amp;lt;a&amp;gt;" in html or "&lt;a&gt;" in html, 'id="t"' in html
(True, True)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

#: rows up to which a table is printed plainly (a short table needs no search box)
STATIC_ROWS = 30
#: rows per page of an interactive table, and the page sizes offered
PAGE_LENGTH = 25
LENGTH_MENU = [10, 25, 100, 500]


def _escaped(df: pd.DataFrame, html_columns: Sequence[str]) -> pd.DataFrame:
    """The cells as the page shows them: text HTML-escaped (except ``html_columns``), a
    missing text blank (not ``NaN``); numbers are left to itables (sorted as numbers)."""
    out = df.copy()
    if not isinstance(out.columns, pd.MultiIndex):
        out = out.rename_axis(columns=None)
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            continue
        escape = col not in html_columns
        out[col] = pd.Series(
            [
                "" if v is None or (not isinstance(v, str) and pd.isna(v))
                else html.escape(v) if escape and isinstance(v, str)
                else v
                for v in values
            ],
            index=out.index, dtype=object,
        )  # fmt: skip
    return out


#: a missing number as itables writes it (shown ``NaN``), and as the report shows it (blank;
#: it still sorts as a number)
_NAN_CELL = (r"[\"NaN\", \"___NaN___\"]", r"[\"\", \"___NaN___\"]")


def table_html(
    df: pd.DataFrame,
    *,
    html_columns: Sequence[str] = (),
    table_id: str | None = None,
    caption: str | None = None,
    **options: Any,
) -> str:
    """The HTML of one interactive table (offline: it needs :func:`init_tables` on the page).

    Parameters
    ----------
    df : DataFrame
        Every row is embedded (no downsampling); the index is shown unless it is a range.
    html_columns : list of str
        Columns whose cells are HTML (e.g. links); every other text cell is escaped.
    table_id : str, optional
        The ``id`` of the ``<table>`` (default: itables picks one).
    caption : str, optional
        Shown under the table.
    **options
        More `itables options <https://mwouts.github.io/itables/options/options.html>`_.

    Returns
    -------
    str
        A ``<table>`` with its script.
    """
    from itables import to_html_datatable

    settings: dict[str, Any] = {
        "connected": False,
        "allow_html": True,
        "maxBytes": 0,
        "pageLength": PAGE_LENGTH,
        "lengthMenu": LENGTH_MENU,
        "classes": "display compact",
        "style": "table-layout:auto;width:100%;margin:0",
        # a link (a track name) never breaks; long text (errors, reasons) wraps in its cell
        "css": ".dt-container td a { white-space: nowrap; }",
        "display_logo_when_loading": False,
        "text_in_header_can_be_selected": False,  # a click on a header sorts by it
        "showIndex": "auto",
        **options,
    }
    if table_id is not None:
        settings["table_id"] = table_id
    out = to_html_datatable(_escaped(df, html_columns), caption=caption, **settings)
    return out.replace(*_NAN_CELL)


def link_table(df: pd.DataFrame, *, html_columns: Sequence[str] = ()) -> Any:
    """A short table printed plainly, its ``html_columns`` as HTML (links), every other
    text cell escaped.

    Examples
    --------
    >>> t = link_table(pd.DataFrame({"track": ['<a href="x.html">x</a>'], "n": ["<1>"]}),
    ...                html_columns=["track"])
    >>> '<a href="x.html">x</a>' in t.data, "&lt;1&gt;" in t.data
    (True, True)
    """
    from IPython.display import HTML

    return HTML(_escaped(df, html_columns).to_html(escape=False, index=False, border=0))


def init_tables() -> Any:
    """Embed the DataTables bundle once, for every interactive table of the notebook after it
    (offline: the report fetches nothing). Display what it returns in a notebook cell.

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML
    from itables import javascript as js
    from itables import options

    js._CONNECTED = False  # what itables.init_notebook_mode(connected=False) sets
    return HTML(js.generate_init_offline_itables_html(options.dt_bundle))


def interactive_table(
    df: pd.DataFrame,
    *,
    static_rows: int = STATIC_ROWS,
    html_columns: Sequence[str] = (),
    **options: Any,
) -> Any:
    """A table for a notebook cell: printed plainly up to ``static_rows`` rows, else
    interactive (:func:`table_html`), every row in it either way.

    Examples
    --------
    >>> interactive_table(pd.DataFrame({"a": [1, 2]})).shape     # short: the frame itself
    (2, 1)
    """
    if len(df) <= static_rows and not html_columns:
        return df
    from IPython.display import HTML

    return HTML(table_html(df, html_columns=html_columns, **options))
