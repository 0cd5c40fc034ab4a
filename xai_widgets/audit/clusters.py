"""SpRAy over an audit's stored maps, out of core, and its results kept in the store.

``Audit.spray()`` clusters the maps of a finished audit with ``spray_large`` (which reads
them a batch at a time from the Zarr array), skipping the failed rows and, with
``classes=``, the rows whose prediction is not one of those classes (SpRAy is classically
run per class). It writes into the store:

- ``clusters`` (N,) int32: each row's cluster (0 = largest), -1 for rows not clustered
- ``embedding`` (N, 2) float32: the spectral embedding, NaN for rows not clustered
- attribute ``spray``: eigengaps, n_clusters, the parameters, the classes, the rows used

The attribute is removed before the arrays are rewritten and set again after them, so a
store holds either a whole SpRAy result or none (``Audit.clusters`` is then None). These
arrays are not part of the audit's identity: resuming or reopening the audit keeps them;
``overwrite=True`` (a new audit) removes them with the rest of the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from xai_widgets.audit.store import zarr_module
from xai_widgets.errors import InputError
from xai_widgets.spray import SprayResult

ATTRIBUTE = "spray"
SEED = 0


class RowSubset:
    """Rows ``rows`` (sorted indices) of an (N, H, W) zarr array, as the slice-only array-like
    ``spray_large`` reads; each slice reads only the zarr chunks it touches, one at a time."""

    def __init__(self, array, rows: np.ndarray, chunk: int):
        self.array, self.rows, self.chunk = array, np.asarray(rows, np.int64), int(chunk)
        self.shape = (len(self.rows), *array.shape[1:])
        self.dtype = array.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("RowSubset is read with slices only")
        wanted = self.rows[key]
        if not len(wanted):
            return np.empty((0, *self.shape[1:]), self.dtype)
        first, last = int(wanted[0]), int(wanted[-1])
        if last - first + 1 == len(wanted):  # contiguous rows: one read
            return np.asarray(self.array[first:last + 1])
        out = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        blocks = wanted // self.chunk
        for block in np.unique(blocks):
            where = np.flatnonzero(blocks == block)
            rows = wanted[where]
            data = np.asarray(self.array[int(rows[0]):int(rows[-1]) + 1])
            out[where] = data[rows - rows[0]]
        return out


def _classes(classes) -> list[int] | None:
    if classes is None:
        return None
    values = np.atleast_1d(np.asarray(classes))
    if values.ndim != 1 or not len(values) or values.dtype.kind not in "iu":
        raise InputError(f"classes must be a class index or a list of class indices; got "
                         f"{classes!r}")
    return sorted({int(v) for v in values})


def spray(audit, k: int | str = "auto", size: int = 14, n_neighbors: int = 10,
          classes=None, progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> SprayResult:
    """SpRAy over ``audit``'s maps (see the module); the result, stored, has one entry per
    row of the audit: cluster -1 and embedding NaN for rows not clustered."""
    from xai_widgets.spray_large import spray_large

    store = audit._store
    done, total = audit.progress
    if done != total:
        raise InputError(f"the audit at {audit.path} is incomplete ({done:,} of {total:,} rows "
                         "done): resume it first (call audit(...) again with the same "
                         "arguments and store), then run spray()")
    chosen = _classes(classes)
    keep = audit.rows_done & ~np.asarray(store.arrays["failed"][:], bool)
    if chosen is not None:
        keep &= np.isin(audit.predictions, chosen)
    rows = np.flatnonzero(keep)
    if len(rows) < 4:
        which = f" predicted as class(es) {chosen}" if chosen is not None else ""
        raise InputError(f"SpRAy needs at least 4 maps; the audit has {len(rows)} "
                         f"usable row(s){which}")
    maps = store.arrays["maps"]
    subset = maps if len(rows) == maps.shape[0] else RowSubset(maps, rows, store.chunk)
    result = spray_large(subset, n_clusters=k, size=size, n_neighbors=n_neighbors, seed=SEED,
                         progress=progress, cancelled=cancelled)
    clusters = np.full(total, -1, np.int32)
    clusters[rows] = result.clusters
    embedding = np.full((total, 2), np.nan, np.float32)
    embedding[rows] = result.embedding
    attributes = {"eigengaps": [float(g) for g in result.eigengaps],
                  "n_clusters": int(result.n_clusters), "k": k if k in ("auto", None) else
                  int(k), "size": int(size), "n_neighbors": int(n_neighbors), "seed": SEED,
                  "classes": chosen, "rows": len(rows)}
    write(audit.path, clusters, embedding, attributes, store.chunk)
    return SprayResult(clusters, embedding, np.asarray(result.eigengaps), result.n_clusters)


def write(path: Path, clusters: np.ndarray, embedding: np.ndarray, attributes: dict,
          chunk: int) -> None:
    """Replace the store's SpRAy arrays and attribute (the attribute last)."""
    group = zarr_module().open_group(Path(path), mode="r+")
    if ATTRIBUTE in group.attrs:
        del group.attrs[ATTRIBUTE]
    n = len(clusters)
    group.create_array("clusters", shape=(n,), chunks=(chunk,), dtype="int32", fill_value=-1,
                       overwrite=True)[:] = clusters
    group.create_array("embedding", shape=(n, 2), chunks=(chunk, 2), dtype="float32",
                       fill_value=np.nan, overwrite=True)[:] = embedding
    group.attrs[ATTRIBUTE] = attributes


def read(path: Path, name: str) -> np.ndarray | None:
    """The stored ``clusters`` or ``embedding``, or None when SpRAy has not been run."""
    group = zarr_module().open_group(Path(path), mode="r")
    if ATTRIBUTE not in group.attrs or name not in group:
        return None
    return np.asarray(group[name][:])


def attributes(path: Path) -> dict | None:
    """The stored SpRAy attribute (eigengaps, n_clusters, parameters), or None."""
    group = zarr_module().open_group(Path(path), mode="r")
    value = group.attrs.get(ATTRIBUTE)
    return None if value is None else dict(value)
