"""What the sandbox accepts in ``POST /audioshake/job/``: the vendor's documented rules, kept
here apart from the client's own models, so that a client schema bug is caught by the server.

The rules are data (:data:`METADATA_RULES`), applied by :func:`parse_job_request`, which
answers with the first problem found as the vendor would (``400`` with ``where: what``).

Examples
--------
>>> req = parse_job_request({"assetId": "a" * 12, "metadata": {"name": "vocals"}})
>>> req.metadata.name, req.metadata.format
('vocals', 'wav')
>>> parse_job_request({"assetId": "a" * 12, "metadata": {"name": "kazoo"}})
Traceback (most recent call last):
ValueError: metadata.name: name must be one of vocals, instrumental, drums, bass, other, guitar, \
piano, wind, dialogue, music, music_fx, music_removal, speech, transcription, alignment, \
other-x-guitar; got 'kazoo'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

#: the stem names of the vendor's create-job page
_NAMES = [
    "vocals",
    "instrumental",
    "drums",
    "bass",
    "other",
    "guitar",
    "piano",
    "wind",
    "dialogue",
    "music",
    "music_fx",
    "music_removal",
    "speech",
    "transcription",
    "alignment",
    "other-x-guitar",
]
#: the output formats of the vendor's create-job page
_FORMATS = ["wav", "flac", "mp3", "aiff", "mp4"]
#: ISO 639-1 codes the vendor lists for ``language``, and ``auto``
_LANGUAGES = [
    "af",
    "ar",
    "az",
    "be",
    "bg",
    "bs",
    "ca",
    "cs",
    "cy",
    "da",
    "de",
    "el",
    "en",
    "es",
    "et",
    "fa",
    "fi",
    "fr",
    "gl",
    "he",
    "hi",
    "hr",
    "hu",
    "hy",
    "id",
    "is",
    "it",
    "ja",
    "kk",
    "kn",
    "ko",
    "lt",
    "lv",
    "mi",
    "mk",
    "mr",
    "ms",
    "ne",
    "nl",
    "no",
    "pl",
    "pt",
    "ro",
    "ru",
    "sk",
    "sl",
    "sr",
    "sv",
    "sw",
    "ta",
    "th",
    "tl",
    "tr",
    "uk",
    "ur",
    "vi",
    "zh",
    "auto",
]

#: field -> (type, rule): ``("one of", values)``, ``("max length", n)``, ``("at least", x)``
METADATA_RULES: dict[str, tuple[type | tuple[type, ...], tuple[str, Any] | None]] = {
    "name": (str, ("one of", _NAMES)),
    "format": (str, ("one of", _FORMATS)),
    "residual": (bool, None),
    "language": (str, ("one of", _LANGUAGES)),
    "customProperty": (str, ("max length", 1000)),
    "maxTrackLength": ((int, float), ("at least", 20)),
    "preview": (bool, None),
    "watermarkInterval": ((int, float), ("at least", 10)),
    "userSessionId": (str, None),
    "audioId": (str, None),
    "licenseId": (str, None),  # listed on the vendor's create-job page
    "stemName": (str, ("one of", _NAMES)),  # the create-job text's name for ``name``
}
_REQUIRED = ("name",)
_DEFAULTS = {"format": "wav"}


@dataclass(frozen=True)
class JobMetadata:
    """A job's ``metadata`` as accepted (absent optional fields are None)."""

    name: str
    format: str = "wav"
    residual: bool | None = None
    language: str | None = None
    customProperty: str | None = None
    maxTrackLength: float | None = None
    preview: bool | None = None
    watermarkInterval: float | None = None
    userSessionId: str | None = None
    audioId: str | None = None
    licenseId: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields that were given (or defaulted), as the job echoes them."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def key(self) -> str:
        """A stable text of the metadata (to recognise a duplicate submission)."""
        return json.dumps(self.as_dict(), sort_keys=True)


@dataclass(frozen=True)
class JobRequest:
    """A ``POST /job/`` body as accepted."""

    assetId: str
    metadata: JobMetadata
    callbackUrl: str | None = None


def _check(where: str, value: Any, kind: type | tuple[type, ...], rule) -> None:
    numeric = kind == (int, float)
    field = where.rsplit(".", 1)[-1]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        wanted = "a number" if numeric else {str: "a string", bool: "true or false"}[kind]
        raise ValueError(f"{where}: {field} must be {wanted}")
    if rule is None:
        return
    op, limit = rule
    if op == "one of" and value not in limit:
        raise ValueError(f"{where}: {field} must be one of {', '.join(limit)}; got {value!r}")
    if op == "max length" and len(value) > limit:
        raise ValueError(f"{where}: {field} must be at most {limit} characters")
    if op == "at least" and value < limit:
        raise ValueError(f"{where}: {field} must be at least {limit}")


def parse_job_request(body: Any) -> JobRequest:
    """Apply the vendor's rules to a create-job body.

    Parameters
    ----------
    body : Any
        The decoded JSON body.

    Returns
    -------
    JobRequest

    Raises
    ------
    ValueError
        ``"<where>: <what>"`` of the first problem (the sandbox answers it with 400).
    """
    if not isinstance(body, dict):
        raise ValueError("body: must be a JSON object")
    unknown = sorted(set(body) - {"assetId", "metadata", "callbackUrl"})
    if unknown:
        raise ValueError(f"{unknown[0]}: Extra inputs are not permitted")
    asset = body.get("assetId")
    if not isinstance(asset, str):
        raise ValueError(
            "assetId: Field required" if asset is None else "assetId: must be a string"
        )
    if not 8 <= len(asset) <= 30:
        raise ValueError("assetId: must be 8-30 characters")
    callback = body.get("callbackUrl")
    if callback is not None and not isinstance(callback, str):
        raise ValueError("callbackUrl: must be a string")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise ValueError(
            "metadata: Field required" if meta is None else "metadata: must be an object"
        )
    for key in meta:
        if key not in METADATA_RULES:
            raise ValueError(f"metadata.{key}: Extra inputs are not permitted")
    # the create-job text says ``stemName``, its curl example sends ``name``: either, not two
    if "stemName" in meta:
        if "name" in meta and meta["name"] != meta["stemName"]:
            raise ValueError("metadata.stemName: stemName and name differ; send one of them")
        meta = {**{k: v for k, v in meta.items() if k != "stemName"}, "name": meta["stemName"]}
    for key in _REQUIRED:
        if key not in meta:
            raise ValueError(f"metadata.{key}: Field required")
    values = {**_DEFAULTS}
    for key, value in meta.items():
        if value is None:
            continue
        kind, rule = METADATA_RULES[key]
        _check(f"metadata.{key}", value, kind, rule)
        values[key] = value
    return JobRequest(asset, JobMetadata(**values), callback)
