"""One stem vocabulary across providers.

Each provider names stems its own way (Sourceress ``track`` is the accompaniment, AudioShake
calls it ``instrumental``). stemkit stores and compares stems under *canonical* names, so a
comparison lines up stem by stem whichever vendor produced it.

Examples
--------
>>> canonical("track")
'accompaniment'
>>> reference_recipe("accompaniment", {"vocals", "drums", "bass", "other"})
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
#: stems that carry the speech of a dialogue track, in order of preference
SPEECH_STEMS = ("dialogue", "vocals")
#: stems that carry the music (and effects) of a track and no voice
MUSIC_STEMS = ("music_fx", "accompaniment")

#: canonical stem -> reference stems whose sum is its reference, in order of preference
#: (MUSDB18 music tracks first, dialogue/music_fx tracks next)
_REFERENCE_RECIPES: dict[str, tuple[tuple[str, ...], ...]] = {
    "vocals": (("vocals",), ("dialogue",)),
    "drums": (("drums",),),
    "bass": (("bass",),),
    "other": (("other",),),
    "accompaniment": (("accompaniment",), ("drums", "bass", "other"), ("music_fx",)),
    "dialogue": (("dialogue",), ("vocals",)),
    "music_fx": (("music_fx",), ("accompaniment",), ("drums", "bass", "other")),
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


def reference_recipe(stem: str, available: set[str] | None = None) -> tuple[str, ...] | None:
    """The reference stems whose sum is the reference of ``stem``: the first recipe whose
    parts are all ``available`` (any recipe's first choice when ``available`` is None).

    Examples
    --------
    >>> reference_recipe("vocals")
    ('vocals',)
    >>> reference_recipe("accompaniment", {"dialogue", "music_fx"})
    ('music_fx',)
    >>> reference_recipe("drums", {"dialogue"}) is None
    True
    """
    stem = canonical(stem)
    recipes = _REFERENCE_RECIPES.get(stem, ((stem,),))
    if available is None:
        return recipes[0]
    return next((r for r in recipes if set(r) <= set(available)), None)
