"""One stem vocabulary across providers.

Each provider names stems its own way (Sourceress ``track`` is the accompaniment, AudioShake
calls it ``instrumental``). stemkit stores and compares stems under *canonical* names, so a
comparison lines up stem by stem whichever vendor produced it.

Examples
--------
>>> canonical("track")
'accompaniment'
>>> reference_recipe("accompaniment")
('drums', 'bass', 'other')
"""

from __future__ import annotations

#: canonical name -> the names vendors use for it
ALIASES: dict[str, tuple[str, ...]] = {
    "vocals": ("vocals", "vocal", "voice"),
    "accompaniment": ("accompaniment", "track", "instrumental", "music", "karaoke"),
    "drums": ("drums",),
    "bass": ("bass",),
    "other": ("other",),
    "dialogue": ("dialogue", "speech"),
    "music_fx": ("music_fx", "music_and_effects", "mne"),
}
_BY_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

#: Stem sets that partition a mixture (they sum back to it).
TWO_STEMS = ("vocals", "accompaniment")
FOUR_STEMS = ("vocals", "drums", "bass", "other")

#: canonical stem -> MUSDB18 reference stems whose sum is its reference
_REFERENCE_RECIPES: dict[str, tuple[str, ...]] = {
    "vocals": ("vocals",),
    "drums": ("drums",),
    "bass": ("bass",),
    "other": ("other",),
    "accompaniment": ("drums", "bass", "other"),
    "dialogue": ("dialogue",),
    "music_fx": ("music_fx",),
}


def canonical(name: str) -> str:
    """The canonical name of a vendor's stem name (file extension and case ignored).

    Examples
    --------
    >>> canonical("Vocals.wav")
    'vocals'
    """
    base = name.rsplit("/", 1)[-1]
    base = base.rsplit(".", 1)[0] if "." in base else base
    base = base.strip().lower()
    return _BY_ALIAS.get(base, base)


def reference_recipe(stem: str) -> tuple[str, ...]:
    """The reference stems whose sum is the reference of ``stem`` (MUSDB18 layout).

    Examples
    --------
    >>> reference_recipe("vocals")
    ('vocals',)
    """
    return _REFERENCE_RECIPES.get(canonical(stem), (canonical(stem),))
