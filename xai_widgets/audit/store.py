"""The Zarr store of an audit: one row per image, written a chunk at a time.

Layout (a Zarr v3 group; N rows, S = map_size, K = top_k, chunks of ``chunk_size`` rows):

- ``maps`` (N,S,S) float16: attribution maps resized with area interpolation
- ``predictions``, ``labels`` (N,) int32 (-1: unknown, or a failed row)
- ``topk_classes`` (N,K) int32 and ``topk_probabilities`` (N,K) float32
- ``failed`` (N,) bool and ``reasons`` (N,) str: rows that could not be read, and why
- ``done`` (number of chunks,) bool, one Zarr chunk per flag: written LAST, after every
  array of the chunk, so a chunk whose flag is unset is recomputed on resume
- attributes ``audit``: model fingerprint, method, every parameter, dataset length and
  fingerprint, library versions

A new store is built in a hidden sibling folder and renamed into place, so a path holds
either a complete empty store or nothing; each Zarr chunk file is itself written to a
temporary file and renamed (zarr's LocalStore), so a killed writer leaves whole files.

>>> import tempfile, numpy as np
>>> from xai_widgets.audit.store import AuditStore
>>> path = tempfile.mkdtemp() + "/run.zarr"
>>> meta = {"identity": {"method": "saliency"}, "n": 5, "map_size": 4, "top_k": 2,
...         "chunk_size": 3}
>>> store = AuditStore.open(path, meta)
>>> store.pending()
[(0, 3), (3, 5)]
>>> store.write(3, np.ones((2, 4, 4)), np.array([1, 2]), np.array([-1, -1]),
...             np.zeros((2, 2)), np.zeros((2, 2)), {4: "unreadable"})
(3, 5)
>>> store.pending(), AuditStore.read(path).failed_rows()
([(0, 3)], {4: 'unreadable'})
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from xai_widgets.errors import InputError

FORMAT = 1
ARRAYS = ("maps", "predictions", "labels", "topk_classes", "topk_probabilities", "failed",
          "reasons", "done")


def zarr_module():
    """zarr, imported on first use (an optional dependency)."""
    try:
        import zarr
    except ImportError:
        raise InputError("audits store their results with zarr, which is not installed: "
                         "pip install xai_widgets[audit]") from None
    return zarr


def check_writable(path: Path) -> None:
    """Raise InputError unless a store can be created at ``path`` (before any work)."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{path.name}.probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(f"cannot write the audit store at {path}: the folder {parent} cannot "
                         f"be written ({error.strerror or error}); pass store= a path in a "
                         "writable folder") from None


def _describe(identity: dict, stored: dict) -> list[str]:
    out = []
    for key in sorted(set(identity) | set(stored)):
        ours, theirs = identity.get(key), stored.get(key)
        if ours != theirs and None not in (ours, theirs):  # None: not used by that method
            out.append(f"{key}: the store has {_short(theirs)}, this call {_short(ours)}")
    return out


def _short(value) -> str:
    text = repr(value)
    return text[:19] + "…'" if isinstance(value, str) and len(value) > 24 else text


class AuditStore:
    """An open audit store (``open`` to create or resume, ``read`` to look)."""

    def __init__(self, group):
        self.group = group
        self.meta = dict(group.attrs["audit"])
        self.arrays = {name: group[name] for name in ARRAYS}
        self.n, self.chunk = self.meta["n"], self.meta["chunk_size"]

    @classmethod
    def open(cls, path, meta: dict, overwrite: bool = False) -> AuditStore:
        """Create the store, or reopen it for resuming when it was made with the same
        ``meta["identity"]``; anything else is an InputError naming the difference."""
        zarr = zarr_module()
        path = Path(path)
        check_writable(path)
        if path.exists():
            existing = cls._existing(path)
            if overwrite:
                shutil.rmtree(path)
            else:
                differences = _describe(meta["identity"], existing.meta["identity"])
                if differences:
                    raise InputError(
                        f"the audit store {path} was made with other settings ("
                        + "; ".join(differences) + "): pass overwrite=True to start a new "
                        "store there, or choose another store path")
                existing.group = zarr.open_group(path, mode="r+")
                return cls(existing.group)
        return cls._create(path, meta)

    @classmethod
    def _existing(cls, path: Path) -> AuditStore:
        try:
            return cls.read(path)
        except InputError:
            raise InputError(f"{path} exists and is not an audit store: choose another store "
                             "path (it is never deleted, not even with overwrite=True)") from None

    @classmethod
    def read(cls, path) -> AuditStore:
        """The store at ``path``, read-only."""
        zarr = zarr_module()
        try:
            group = zarr.open_group(Path(path), mode="r")
            if group.attrs.get("audit", {}).get("format") != FORMAT:
                raise KeyError("audit")
            return cls(group)
        except (FileNotFoundError, KeyError, ValueError, TypeError) as error:
            raise InputError(f"no audit store at {path} ({error}): run audit(...) with "
                             f"store={str(path)!r} first") from None

    @classmethod
    def _create(cls, path: Path, meta: dict) -> AuditStore:
        zarr = zarr_module()
        n, size, k, chunk = meta["n"], meta["map_size"], meta["top_k"], meta["chunk_size"]
        temporary = path.parent / f".{path.name}.creating-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        group = zarr.open_group(temporary, mode="w")
        group.create_array("maps", shape=(n, size, size), chunks=(chunk, size, size),
                           dtype="float16", fill_value=0)
        for name in ("predictions", "labels"):
            group.create_array(name, shape=(n,), chunks=(chunk,), dtype="int32", fill_value=-1)
        group.create_array("topk_classes", shape=(n, k), chunks=(chunk, k), dtype="int32",
                           fill_value=-1)
        group.create_array("topk_probabilities", shape=(n, k), chunks=(chunk, k),
                           dtype="float32", fill_value=0)
        group.create_array("failed", shape=(n,), chunks=(chunk,), dtype="bool",
                           fill_value=False)
        group.create_array("reasons", shape=(n,), chunks=(chunk,), dtype=str, fill_value="")
        n_chunks = -(-n // chunk)
        group.create_array("done", shape=(n_chunks,), chunks=(1,), dtype="bool",
                           fill_value=False)
        group.attrs["audit"] = {**meta, "format": FORMAT}
        os.replace(temporary, path)
        return cls(zarr.open_group(path, mode="r+"))

    # -- chunks ----------------------------------------------------------------------
    def ranges(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.chunk, self.n)) for s in range(0, self.n, self.chunk)]

    def done(self) -> np.ndarray:
        return np.asarray(self.arrays["done"][:], dtype=bool)

    def pending(self) -> list[tuple[int, int]]:
        """(start, stop) of every chunk not marked done, in row order."""
        done = self.done()
        return [r for r, flag in zip(self.ranges(), done, strict=True) if not flag]

    def rows_done(self) -> int:
        done = self.done()
        return sum(stop - start for (start, stop), flag in zip(self.ranges(), done, strict=True)
                   if flag)

    def write(self, start: int, maps, predictions, labels, topk_classes, topk_probabilities,
              failed: dict) -> tuple[int, int]:
        """Write the chunk that begins at row ``start``, then mark it done (last); returns
        its rows (start, stop)."""
        if start % self.chunk:
            raise ValueError(f"row {start} does not begin a chunk of {self.chunk}")
        stop = min(start + self.chunk, self.n)
        a = self.arrays
        a["maps"][start:stop] = np.asarray(maps, dtype=np.float16)
        a["predictions"][start:stop] = np.asarray(predictions, dtype=np.int32)
        a["labels"][start:stop] = np.asarray(labels, dtype=np.int32)
        a["topk_classes"][start:stop] = np.asarray(topk_classes, dtype=np.int32)
        a["topk_probabilities"][start:stop] = np.asarray(topk_probabilities, dtype=np.float32)
        flags = np.zeros(stop - start, bool)
        reasons = np.full(stop - start, "", dtype=object)
        for row, reason in failed.items():
            flags[row - start], reasons[row - start] = True, reason
        a["failed"][start:stop] = flags
        a["reasons"][start:stop] = reasons
        a["done"][start // self.chunk] = True
        return start, stop

    def failed_rows(self) -> dict[int, str]:
        """{row: reason} for the failed rows of finished chunks."""
        flags = np.asarray(self.arrays["failed"][:], dtype=bool)
        rows = np.nonzero(flags)[0]
        if not len(rows):
            return {}
        reasons = self.arrays["reasons"][:]
        return {int(r): str(reasons[r]) for r in rows}
