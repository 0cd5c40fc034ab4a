"""Reader for MNIST-format IDX files (MNIST, Fashion-MNIST), plain or gzipped.

>>> import numpy as np, tempfile, pathlib
>>> from xai_widgets.zoo.idx import write_idx, load_idx
>>> path = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte"
>>> write_idx(path, np.arange(3, dtype=np.uint8))
>>> load_idx(path).tolist()
[0, 1, 2]
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from xai_widgets.errors import InputError

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def load_idx(path) -> np.ndarray:
    """One IDX file as a numpy array of its stored shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise InputError(f"no IDX file at {path}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise InputError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise InputError(f"{path} is truncated: header says {shape}, file has {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8/int8 array as an IDX file (used by tests to make small datasets)."""
    array = np.asarray(array)
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def load_idx_dataset(folder, split: str = "train"):
    """``(images, labels)`` from the standard MNIST/Fashion-MNIST file names in ``folder``.

    ``split`` is ``"train"`` or ``"t10k"`` (test). Images come back as uint8 (N,1,28,28).
    """
    if split not in ("train", "t10k"):
        raise InputError(f"split must be 'train' or 't10k', got {split!r}")
    folder = Path(folder)
    found = {}
    for kind, rank in (("images", 3), ("labels", 1)):
        stem = f"{split}-{kind}-idx{rank}-ubyte"
        candidates = [folder / stem, folder / f"{stem}.gz"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise InputError(f"{folder} has no {stem}[.gz]: download MNIST or Fashion-MNIST and "
                             "pass the folder that holds its four IDX files")
        found[kind] = load_idx(path)
    images, labels = found["images"], found["labels"]
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} labels in {folder}")
    return images[:, None], labels.astype(np.int64)
