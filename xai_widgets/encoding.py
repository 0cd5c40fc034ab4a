"""numpy arrays ↔ ``{"buffer", "dtype", "shape"}`` dicts that travel as binary buffers.

ipywidgets sends ``bytes`` inside a synced dict as a binary buffer (no base64, no JSON list);
the front end receives a ``DataView`` and ``js/codecs.js`` turns it back into a typed array.

>>> import numpy as np
>>> from xai_widgets.encoding import encode, decode
>>> payload = encode(np.arange(6, dtype=np.float64).reshape(2, 3))
>>> payload["dtype"], payload["shape"], len(payload["buffer"])
('float32', [2, 3], 24)
>>> decode(payload).tolist()
[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
"""

from __future__ import annotations

import numpy as np

DTYPES = ("float32", "uint8")


def encode(array, dtype: str = "float32") -> dict:
    """An array as a dict whose ``buffer`` is sent as raw bytes (float32 or uint8)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    array = np.ascontiguousarray(np.asarray(array), dtype=dtype)
    return {"buffer": array.tobytes(), "dtype": dtype, "shape": list(array.shape)}


def decode(payload: dict) -> np.ndarray:
    """The inverse of ``encode`` (used by tests and by a front end written in Python)."""
    buffer = payload["buffer"]
    return np.frombuffer(bytes(buffer), dtype=payload["dtype"]).reshape(payload["shape"])


EMPTY = {"buffer": b"", "dtype": "float32", "shape": [0]}
