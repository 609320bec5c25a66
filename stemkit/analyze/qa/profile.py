"""The QA profile: the thresholds of every check, packaged in ``profile.toml``.

A batch can merge its own file over it (:func:`load_profile`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

#: severity order of verdicts (worst last)
SEVERITY = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3}
#: the keys a rule may have (see :func:`stemkit.analyze.qa.verdicts`)
RULE_KEYS = {"warn_above", "fail_above", "warn_below", "fail_below", "abs", "nan", "enabled"}


def _merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        is_table = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merge(out[key], value) if is_table else value
    return out


def _validate(profile: Mapping, source: str) -> None:
    for check, rule in profile.get("checks", {}).items():
        tables = [
            (check, rule),
            *((f"{check}.stems.{s}", r) for s, r in rule.get("stems", {}).items()),
        ]
        for where, table in tables:
            unknown = set(table) - RULE_KEYS - ({"stems"} if where == check else set())
            if unknown:
                raise ValueError(f"{source}: unknown key(s) {sorted(unknown)} in [checks.{where}]")
            if table.get("nan", "n/a") not in SEVERITY:
                raise ValueError(f"{source}: [checks.{where}] nan must be one of {list(SEVERITY)}")
            for key in RULE_KEYS & set(table) - {"nan"}:
                flag = key in ("abs", "enabled")
                ok = isinstance(table[key], bool) == flag and isinstance(table[key], int | float)
                if not ok:
                    kind = "true or false" if flag else "a number"
                    raise ValueError(f"{source}: [checks.{where}] {key} must be {kind}")


def load_profile(path: str | Path | None = None) -> dict:
    """The QA profile: the packaged ``profile.toml``, with ``path`` merged over it.

    An override file names only what it changes (a key, a check, a per-stem table); everything
    else keeps the default. Unknown keys raise ``ValueError`` (a typo never silently passes).

    Examples
    --------
    >>> load_profile()["checks"]["offset_ms"]["fail_above"]
    20.0
    """
    text = (
        resources.files("stemkit.analyze.qa").joinpath("profile.toml").read_text(encoding="utf-8")
    )
    profile = tomllib.loads(text)
    _validate(profile, "profile.toml")
    if path is not None:
        override = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        _validate(override, str(path))
        profile = _merge(profile, override)
    return profile


def _rule(profile: Mapping, check: str, stem: str) -> dict | None:
    rule = profile.get("checks", {}).get(check)
    if rule is None:
        return None
    return _merge(
        {k: v for k, v in rule.items() if k != "stems"}, rule.get("stems", {}).get(stem, {})
    )
