"""SpRAy for dataset audits: the same analysis as ``spray.spray()`` on 60,000+ maps.

``spray()`` builds a dense N×N affinity and a full eigendecomposition, impossible for a whole
dataset. ``spray_large()`` reads the maps in batches of ``batch`` rows (a numpy array, a
memmap or a zarr array of shape (N, H, W); float16 is fine), keeps only the N×size² float32
features (47 MB for 60,000 maps at 14×14), builds a sparse symmetric kNN graph (exact kNN,
the same weights as ``spray.affinity``), finds the normalised Laplacian's few smallest
eigenpairs with ARPACK on each connected component, picks k by the same eigengap rule as
``spray.eigengap`` and runs k-means on the row-normalised spectral embedding. Clusters are
numbered by size (0 = largest).

>>> import numpy as np
>>> from xai_widgets.spray_large import spray_large
>>> rng = np.random.default_rng(0)
>>> maps = np.concatenate([rng.normal(0, .1, (30, 8, 8)) + np.eye(8),
...                        rng.normal(0, .1, (20, 8, 8)) + np.eye(8)[::-1]]).astype(np.float16)
>>> result = spray_large(maps, size=8, n_neighbors=5, batch=16)
>>> result.n_clusters, np.bincount(result.clusters).tolist(), result.embedding.shape
(2, [30, 20], (50, 2))
>>> len(set(result.clusters[:30])), len(set(result.clusters[30:]))
(1, 1)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from xai_widgets.batch import downsize
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.spray import SprayResult

MOST = 8  # the eigengap looks at the 9 smallest eigenvalues, as spray.eigengap does
DENSE_COMPONENT = 600  # components up to this size are solved with a dense eigh


def spray_large(maps, n_clusters: int | str | None = "auto", size: int = 14,
                n_neighbors: int = 10, batch: int = 4096, seed: int = 0,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> SprayResult:
    """Cluster (N, H, W) maps out of core; ``n_clusters`` "auto" (or None) = the eigengap.

    ``maps`` is only ever sliced ``maps[start:start + batch]``. ``n_neighbors`` is capped at
    N - 1. ``progress(done, total)`` counts 2·N + 2 units: N for reading the maps, N for the
    neighbour search, one for the eigensolver and one for k-means. ``cancelled()`` is polled
    between batches and raises ``errors.Cancelled`` when it returns True."""
    n = _check(maps, n_clusters, size, n_neighbors, batch)
    total = 2 * n + 2
    tick = progress or (lambda done, total: None)

    def checkpoint(done: int) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled()
        tick(done, total)

    features = read_features(maps, n, size, batch, lambda done: checkpoint(done))
    graph = knn_graph(features, min(n_neighbors, n - 1), batch,
                      lambda done: checkpoint(n + done))
    del features
    k_fixed = None if n_clusters in ("auto", None) else int(n_clusters)
    n_eig = min(n, max(MOST + 1, k_fixed or 0))
    values, vectors = smallest_eigenpairs(graph, n_eig, seed)
    gaps = np.diff(values[: MOST + 1])
    k = k_fixed or (int(np.argmax(gaps[1:]) + 2) if len(gaps) > 1 else 2)
    checkpoint(2 * n + 1)
    clusters = assign(vectors[:, :k], k, seed)
    degree = np.sqrt(np.asarray(graph.sum(axis=1)).ravel())
    embedding = _sign_flip(vectors[:, 1:3] / degree[:, None])
    if embedding.shape[1] < 2:  # fewer than 3 maps' worth of eigenvectors (never for N ≥ 4)
        embedding = np.pad(embedding, ((0, 0), (0, 2 - embedding.shape[1])))
    checkpoint(total)
    return SprayResult(clusters, embedding, gaps, k)


def _check(maps, n_clusters, size, n_neighbors, batch) -> int:
    shape = getattr(maps, "shape", None)
    if shape is None or not hasattr(maps, "__getitem__"):
        raise InputError("spray_large needs an array-like of shape (N, H, W) that can be "
                         f"sliced (numpy array, memmap, zarr array); got {type(maps).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[0] < 4 or min(shape[1:]) < 1:
        raise InputError(f"SpRAy needs at least 4 maps (N, H, W); got shape {shape}")
    if np.dtype(getattr(maps, "dtype", np.float64)).kind not in "fiub":
        raise InputError(f"maps must be numeric; got dtype {maps.dtype}")
    if n_clusters not in ("auto", None) and (
            isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer)
            or not 2 <= n_clusters < shape[0]):
        raise InputError(f'n_clusters must be "auto" or an int in 2..{shape[0] - 1}; '
                         f"got {n_clusters!r}")
    for name, value in (("size", size), ("n_neighbors", n_neighbors), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{name} must be a positive int; got {value!r}")
    return shape[0]


def read_features(maps, n: int, size: int, batch: int,
                  done: Callable[[int], None]) -> np.ndarray:
    """(N, size²) float32 unit-length features, reading ``maps`` ``batch`` rows at a time."""
    features = None
    for start in range(0, n, batch):
        done(start)
        chunk = np.asarray(maps[start:start + batch], dtype=np.float32)
        if chunk.ndim != 3 or len(chunk) != min(batch, n - start):
            raise InputError(f"maps[{start}:{start + batch}] has shape {chunk.shape}; the "
                             "array-like must return (rows, H, W) slices")
        if not np.isfinite(chunk).all():
            bad = start + int(np.flatnonzero(~np.isfinite(chunk).reshape(len(chunk), -1)
                                             .all(1))[0])
            raise InputError(f"map {bad} contains NaN or infinite values; fix or drop it")
        pooled = downsize(chunk, size).astype(np.float32, copy=False)
        if features is None:
            features = np.empty((n, pooled.shape[1]), np.float32)
        features[start:start + len(pooled)] = pooled
    done(n)
    return features


def knn_graph(features: np.ndarray, k: int, batch: int,
              done: Callable[[int], None]) -> sp.csr_matrix:
    """``spray.affinity`` as a sparse matrix: 1 for mutual neighbours, 0.5 for one-sided.
    Exact brute-force kNN, queried ``batch`` rows at a time (self excluded like sklearn)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(features)
    columns = np.empty((n, k), np.int64)
    for start in range(0, n, batch):
        done(start)
        rows = np.arange(start, min(start + batch, n))
        found = search.kneighbors(features[rows], return_distance=False)
        keep = found != rows[:, None]
        keep[keep.all(axis=1), 0] = False  # self not found among duplicates: drop the first
        columns[rows] = found[keep].reshape(len(rows), k)
    done(n)
    graph = sp.csr_matrix((np.ones(n * k), columns.ravel(), np.arange(0, n * k + 1, k)),
                          shape=(n, n))
    return (0.5 * (graph + graph.T)).tocsr()


def smallest_eigenpairs(graph: sp.csr_matrix, count: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest eigenvalues of the normalised Laplacian and their eigenvectors
    (N, count), solved per connected component so repeated zeros are found exactly."""
    from scipy.sparse.csgraph import connected_components

    n = graph.shape[0]
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = 1.0 / np.sqrt(degree)
    normalised = sp.diags(scale) @ graph @ sp.diags(scale)  # I − L_sym
    n_parts, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_parts + 1))
    candidates = []  # (eigenvalue, component, index within the component, nodes, vector)
    for part in range(n_parts):
        nodes = order[bounds[part]:bounds[part + 1]]
        block = normalised if n_parts == 1 else normalised[nodes][:, nodes]
        want = min(count, len(nodes))
        if len(nodes) <= max(DENSE_COMPONENT, 2 * want + 1):
            mu, vec = np.linalg.eigh(block.toarray())
            mu, vec = mu[::-1][:want], vec[:, ::-1][:, :want]
        else:
            mu, vec = _arpack(block, want, seed)
        for j in range(want):
            candidates.append((max(0.0, 1.0 - mu[j]), part, j, nodes, vec[:, j]))
    candidates.sort(key=lambda c: (round(c[0], 10), c[1], c[2]))
    values = np.array([c[0] for c in candidates[:count]])
    vectors = np.zeros((n, len(values)))
    for column, (_, _, _, nodes, vec) in enumerate(candidates[:count]):
        vectors[nodes, column] = vec
    return values, vectors


def _arpack(block: sp.csr_matrix, want: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``want`` largest eigenpairs of I − L_sym on one connected component, descending."""
    from scipy.sparse.linalg import eigsh

    m = block.shape[0]
    start = np.random.default_rng(seed).uniform(0.5, 1.5, m)
    # shift by I so the spectrum lies in [0, 2]: the wanted end is also the largest magnitude
    shifted = (block + sp.identity(m, format="csr")).tocsr()
    mu, vec = eigsh(shifted, k=want, which="LA", v0=start, tol=1e-8,
                    ncv=min(m, max(4 * want + 1, 40)), maxiter=20 * m)
    order = np.argsort(-mu, kind="stable")
    return mu[order] - 1.0, vec[:, order]


def assign(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means on the row-normalised embedding (Ng, Jordan & Weiss); ids by size, largest 0."""
    from sklearn.cluster import KMeans

    rows = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(rows)
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.argmax(labels == c) if sizes[c] else len(labels) for c in range(k)])
    rank = np.lexsort((first, -sizes))  # by size, ties by the first map in the cluster
    relabel = np.empty(k, np.int64)
    relabel[rank] = np.arange(k)
    return relabel[labels]


def _sign_flip(embedding: np.ndarray) -> np.ndarray:
    """Each column's largest-magnitude entry positive (sklearn's deterministic sign)."""
    peaks = embedding[np.argmax(np.abs(embedding), axis=0), np.arange(embedding.shape[1])]
    return embedding * np.where(peaks < 0, -1.0, 1.0)
