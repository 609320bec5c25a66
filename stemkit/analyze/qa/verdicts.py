"""Verdicts: each check's row judged by its rule; the worst verdict per stem, with reasons."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from stemkit.analyze.qa.profile import SEVERITY, _rule


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"


def _conditions(rule: Mapping, level: str, unit: str) -> list[tuple[str, float, str]]:
    """``(op, limit, text)`` of a rule's conditions at ``level`` ("fail"/"warn")."""
    var = "|value| " if rule.get("abs") else ""
    out = []
    for side, op in (("above", ">"), ("below", "<")):
        limit = rule.get(f"{level}_{side}")
        if limit is not None:
            out.append((op, float(limit), f"{var}{op} {_fmt(float(limit))} {unit}".strip()))
    return out


def judge(value: float, rule: Mapping | None, unit: str = "") -> tuple[str, str]:
    """``(verdict, threshold text)`` of one value under one rule (see :func:`verdicts`).

    Examples
    --------
    >>> judge(3.2, {"fail_above": 1.0, "warn_above": 0.1}, "%")
    ('fail', 'fail if > 1 %')
    >>> judge(-0.4, {"fail_above": 20.0, "abs": True}, "ms")
    ('pass', 'fail if |value| > 20 ms')
    """
    if rule is None:
        return "n/a", "no rule"
    if not rule.get("enabled", True):
        return "n/a", "disabled"
    every = [(lvl, *c) for lvl in ("fail", "warn") for c in _conditions(rule, lvl, unit)]
    if value is None or math.isnan(value):
        return str(rule.get("nan", "n/a")), "not measurable"
    x = abs(value) if rule.get("abs") else value
    for level, op, limit, text in every:
        if (x > limit) if op == ">" else (x < limit):
            return level, f"{level} if {text}"
    return "pass", "; ".join(f"{level} if {text}" for level, _, _, text in every) or "no limit"


def verdicts(rows: pd.DataFrame, profile: dict) -> pd.DataFrame:
    """Judge every QA row: adds ``verdict`` (pass / warn / fail / n/a) and ``threshold``.

    Rule format (``[checks.NAME]`` in the profile TOML, all keys optional)::

        fail_above = 0.1     # fail when value > 0.1
        warn_above = 0.01    # else warn when value > 0.01
        fail_below / warn_below   # the same, for value < limit
        abs = true           # compare |value| (signed checks: offset_ms, duration_diff_s)
        nan = "n/a"          # verdict of a NaN (unmeasurable) value: n/a, pass, warn or fail
        enabled = false      # keep the value, judge nothing (n/a)
        [checks.NAME.stems.STEM]  # the same keys, for one stem name only

    Fail conditions are tested first, then warn; a row passes when none holds. A check
    without a rule is ``n/a`` ("no rule"). ``threshold`` is the condition that fired
    (``"fail if > 0.1 %"``, ``"fail if |value| > 20 ms"``), or every condition for a pass.

    Examples
    --------
    >>> from stemkit.analyze.qa import load_profile
    >>> rows = pd.DataFrame([{"stem": "vocals", "check": "clip_pct", "value": 3.2, "unit": "%"}])
    >>> verdicts(rows, load_profile())[["verdict", "threshold"]].iloc[0].tolist()
    ['fail', 'fail if > 0.1 %']
    """
    out = pd.DataFrame(rows).copy()
    judged = [
        judge(value, _rule(profile, check, stem), unit)
        for check, stem, value, unit in zip(
            out["check"], out["stem"], out["value"], out["unit"], strict=True
        )
    ]
    out["verdict"] = [v for v, _ in judged]
    out["threshold"] = [t for _, t in judged]
    return out


def _reason(row: Mapping[str, Any]) -> str:
    """``"clip_pct 3.2 % > 0.1 %"`` or ``"offset_ms -100 ms, |value| > 20 ms"`` from a judged
    row, with its detail in parentheses."""
    if pd.isna(row["value"]):
        text = f"{row['check']} not measurable"
    else:
        cond = row["threshold"].split(" if ", 1)[-1]
        text = f"{row['check']} {_fmt(row['value'])} {row['unit']}".strip()
        text += f", {cond}" if cond.startswith("|") else f" {cond}"
    return f"{text} ({row['detail']})" if row.get("detail") else text


def _reasons(group: pd.DataFrame, level: str) -> str:
    return "; ".join(_reason(row) for _, row in group[group["verdict"] == level].iterrows())


def summary_verdicts(v: pd.DataFrame) -> pd.DataFrame:
    """Worst verdict per provider x track x stem, failures first, with what failed.

    Groups by whichever of ``provider``, ``track``, ``stem`` are columns of ``v`` (the output
    of :func:`verdicts`). ``failed`` / ``warned`` list the checks with value and limit, e.g.
    ``"clip_pct 3.2 % > 0.1 % (5645 samples)"``, joined by ``"; "``.

    Examples
    --------
    >>> from stemkit.analyze.qa import load_profile
    >>> rows = pd.DataFrame([{"stem": "bass", "check": "clip_pct", "value": 3.2, "unit": "%"},
    ...                      {"stem": "bass", "check": "lufs", "value": -20, "unit": "LUFS"}])
    >>> summary_verdicts(verdicts(rows, load_profile())).iloc[0].to_dict()
    {'stem': 'bass', 'verdict': 'fail', 'n_fail': 1, 'n_warn': 0, 'failed': 'clip_pct 3.2 % > 0.1 %', 'warned': ''}
    """  # noqa: E501
    keys = [k for k in ("provider", "track", "stem") if k in v.columns]
    cols = [*keys, "verdict", "n_fail", "n_warn", "failed", "warned"]
    if v.empty:
        return pd.DataFrame(columns=cols)
    # one pass over the table, not a Python loop per stem (a 1000-track batch has 10 000)
    v = v.reset_index(drop=True)
    severity = v["verdict"].map(lambda x: SEVERITY[x])
    groups = v.groupby(keys, sort=False, dropna=False)
    out = groups.size().rename("_n").to_frame()
    names = {rank: name for name, rank in SEVERITY.items()}
    out["verdict"] = (
        severity.groupby([v[k] for k in keys], sort=False, dropna=False).max().map(names)
    )
    for level in ("fail", "warn"):
        hit = v["verdict"] == level
        out[f"n_{level}"] = (
            hit.groupby([v[k] for k in keys], sort=False, dropna=False).sum().astype(int)
        )
        flagged = v[hit]
        text = pd.Series(
            [_reason(row) for row in flagged.to_dict("records")], index=flagged.index, dtype=object
        )
        joined = text.groupby([flagged[k] for k in keys], sort=False, dropna=False).agg("; ".join)
        out["failed" if level == "fail" else "warned"] = joined.reindex(out.index).fillna("")
    out = out.reset_index()[cols]
    worst_first = out.sort_values("verdict", key=lambda v: -v.map(SEVERITY), kind="stable")
    return worst_first.reset_index(drop=True)
