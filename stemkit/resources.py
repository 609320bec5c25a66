"""Files that ship inside the package: the notebooks and the demo's speech clips.

In the wheel they live in ``stemkit/_bundled/`` (copied there at build time from the
repository's top-level ``notebooks/`` and ``data/speech/``); in a source checkout (an editable
install) they are read from those top-level folders. Either way they are found with
:mod:`importlib.resources`, so stemkit runs from any folder.

Examples
--------
>>> notebook("analyze").name
'analyze.ipynb'
>>> sorted(p.name for p in speech_clips())[:1]
['kitchen.flac']
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from stemkit.errors import StemkitError

#: the notebooks a batch runs, and the explorer
NOTEBOOKS = ("separate", "analyze", "compare", "explore")
#: where each kind of file sits in a source checkout, relative to the repository
_CHECKOUT = {"notebooks": Path("notebooks"), "speech": Path("data") / "speech"}


def bundled(kind: str) -> Path:
    """The folder of one kind of packaged file: ``"notebooks"`` or ``"speech"``.

    Parameters
    ----------
    kind : str
        ``"notebooks"`` or ``"speech"``.

    Returns
    -------
    Path
        A folder on disk.

    Raises
    ------
    StemkitError
        When neither the installed package nor a source checkout has it (a broken install).
    """
    if kind not in _CHECKOUT:
        raise ValueError(f"unknown kind {kind!r}; one of {sorted(_CHECKOUT)}")
    packaged = Path(str(resources.files("stemkit") / "_bundled" / kind))
    if packaged.is_dir():
        return packaged
    checkout = Path(str(resources.files("stemkit"))).parent / _CHECKOUT[kind]
    if checkout.is_dir():
        return checkout
    raise StemkitError(
        f"stemkit's packaged {kind} are missing (looked in {packaged} and {checkout})",
        hint="reinstall stemkit from its wheel (`pip install --force-reinstall stemkit-*.whl`)",
    )


def notebook(name: str) -> Path:
    """One packaged notebook: ``separate``, ``analyze``, ``compare`` or ``explore``.

    Examples
    --------
    >>> notebook("compare").suffix
    '.ipynb'
    """
    if name not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {name!r}; one of {NOTEBOOKS}")
    return bundled("notebooks") / f"{name}.ipynb"


def copy_notebooks(folder: str | Path) -> list[Path]:
    """Copy the packaged notebooks into ``folder``; a notebook already there is kept as it is
    (edits made in Jupyter are never overwritten).

    Parameters
    ----------
    folder : path
        Where the notebooks go; created if missing.

    Returns
    -------
    list of Path
        The notebooks copied now (empty when all were there).

    Examples
    --------
    >>> import tempfile
    >>> [p.name for p in copy_notebooks(tempfile.mkdtemp())]
    ['separate.ipynb', 'analyze.ipynb', 'compare.ipynb', 'explore.ipynb']
    """
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in NOTEBOOKS:
        target = folder / f"{name}.ipynb"
        if not target.exists():
            shutil.copyfile(notebook(name), target)
            copied.append(target)
    return copied


def speech_clips() -> list[Path]:
    """The demo's dialogue clips (FLAC, each with a ``.txt`` script beside it)."""
    return sorted(bundled("speech").glob("*.flac"))
