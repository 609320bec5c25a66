"""What the separations cost, where a vendor reports it (AudioShake's Tasks API: credits).

:func:`cost_summary` turns the jobs table of a batch (one row per track × provider, with the
``cost`` the vendor reported and the track's ``audio_seconds``) into credits per provider:
total, per track and per audio minute. Providers that report no cost are left out.

Examples
--------
>>> import pandas as pd
>>> jobs = pd.DataFrame({"track": ["a", "b", "a"], "provider": ["x", "x", "y"],
...                      "state": ["done"] * 3, "cost": [2.0, 4.0, None],
...                      "audio_seconds": [60.0, 120.0, 60.0]})
>>> cost_summary(jobs).loc["x"].to_dict()  # y reports no cost: left out
{'jobs': 2.0, 'credits': 6.0, 'credits per track': 3.0, 'credits per audio minute': 2.0}
>>> list(cost_summary(jobs).index)
['x']
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["jobs", "credits", "credits per track", "credits per audio minute"]


def cost_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Credits per provider: total, per track, per audio minute (of the tracks billed).

    Parameters
    ----------
    jobs : pd.DataFrame
        One row per track × provider with columns ``track``, ``provider``, ``cost``
        (credits, NaN/None when the vendor reports none) and ``audio_seconds``.

    Returns
    -------
    pd.DataFrame
        Indexed by provider, columns :data:`COLUMNS`; empty when no vendor reported a cost.

    Examples
    --------
    >>> cost_summary(pd.DataFrame(columns=["track", "provider", "cost", "audio_seconds"])).empty
    True
    """
    if "cost" not in jobs or jobs.empty:
        return pd.DataFrame(columns=COLUMNS)
    billed = jobs[pd.to_numeric(jobs["cost"], errors="coerce").notna()].copy()
    if billed.empty:
        return pd.DataFrame(columns=COLUMNS)
    billed["cost"] = billed["cost"].astype(float)
    billed["minutes"] = pd.to_numeric(billed["audio_seconds"], errors="coerce") / 60.0
    g = billed.groupby("provider")
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "credits": g["cost"].sum(),
            "credits per track": g["cost"].sum() / g["track"].nunique(),
            "credits per audio minute": g["cost"].sum() / g["minutes"].sum(),
        }
    )
    return out.round(3)
