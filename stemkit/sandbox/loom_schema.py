"""The answers of the Loom transcription API as its doc describes them, kept in the sandbox's own
package and strict (no coercion, no unknown fields). Tests validate every sandbox answer against
these models.

Source: the vendor's get-job-details page (``tests/fixtures/loom_job_details.json``). Its
examples print placeholders where the values are typed (``"audio length in seconds"``,
``file size in bytes``), so the models type what the placeholders mean: seconds and bytes are
numbers, timestamps are text; ``msg`` starts with ``SUCCESS``, ``NOTICE`` or ``ERROR``.

Examples
--------
>>> Upload.model_validate({"msg": "SUCCESS: uploaded", "audio_url": "https://x"}).audio_url
'https://x'
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_MSG = r"^(SUCCESS|NOTICE|ERROR)\b"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Upload(_Strict):
    """``POST /upload/audio``."""

    msg: str = Field(pattern=_MSG)
    audio_url: str


class Submitted(_Strict):
    """``POST /jobs/submit``."""

    message: str
    poll_endpoint: str
    job_reference_id: str


class Poll(_Strict):
    """``POST /jobs/<id>/poll``."""

    msg: str = Field(pattern=_MSG)
    transcript_url: list[str]
    media_files: list[str]
    extracted_fields: list


class InputFile(_Strict):
    """One of ``job_files.input_files``."""

    filename: str
    file_type: str
    file_size: int
    download_url: str


class OutputFile(_Strict):
    """One of ``output_files.transcripts`` or ``processed_input_media``."""

    filename: str
    file_subtype: str
    download_url: str
    language_code: str | None = None


class OutputFiles(_Strict):
    """``job_files.output_files`` of a finished job."""

    transcripts: list[OutputFile]
    processed_input_media: list[OutputFile]
    extracted_fields_url: str | None


class JobFiles(_Strict):
    """``job_data.job_files``."""

    input_files: list[InputFile]
    output_files: OutputFiles | None


class JobInfo(_Strict):
    """``job_data.job_info``."""

    job_reference_id: str
    job_name: str
    status: str
    profile_name: str
    submitted_at: str
    completed_at: str | None
    total_audio_length: float | None
    is_blank_audio: bool
    error_message: str | None


class JobData(_Strict):
    """``job_data``."""

    job_info: JobInfo
    job_files: JobFiles


class Details(_Strict):
    """``POST /jobs/<id>/details``."""

    success: bool
    msg: str = Field(pattern=_MSG)
    job_data: JobData
