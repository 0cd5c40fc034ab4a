"""Spectral Relevance Analysis (SpRAy): cluster many heatmaps of one class to find the
model's strategies (e.g. "looks at the digit" vs "looks at the corner tag").

scikit-learn (already required by shap and lime) provides the nearest-neighbour graph,
spectral clustering and the spectral embedding.

>>> import numpy as np
>>> from xai_widgets.spray import spray
>>> rng = np.random.default_rng(0)
>>> maps = np.concatenate([rng.normal(0, .1, (20, 8, 8)) + np.eye(8),
...                        rng.normal(0, .1, (20, 8, 8)) + np.eye(8)[::-1]])
>>> result = spray(maps, n_clusters=2, size=8)
>>> len(set(result.clusters[:20])), len(set(result.clusters[20:])), result.embedding.shape
(1, 1, (40, 2))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_widgets.batch import downsize
from xai_widgets.errors import InputError


@dataclass(frozen=True)
class SprayResult:
    clusters: np.ndarray  # (n,) cluster id per map
    embedding: np.ndarray  # (n, 2) spectral embedding
    eigengaps: np.ndarray  # gaps of the graph Laplacian's smallest eigenvalues
    n_clusters: int


def affinity(features: np.ndarray, n_neighbors: int) -> np.ndarray:
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(features, n_neighbors=n_neighbors, include_self=False)
    return (0.5 * (graph + graph.T)).toarray()


def eigengap(graph: np.ndarray, most: int = 8) -> tuple[int, np.ndarray]:
    """The number of clusters where the normalised Laplacian's eigenvalues jump most."""
    from scipy.sparse.csgraph import laplacian

    values = np.linalg.eigvalsh(laplacian(graph, normed=True))[: most + 1]
    gaps = np.diff(values)
    return int(np.argmax(gaps[1:]) + 2), gaps


def spray(maps: np.ndarray, n_clusters: int | None = None, size: int = 14,
          n_neighbors: int | None = None, seed: int = 0) -> SprayResult:
    """Cluster (N, H, W) maps: downsized and normalised, a k-nearest-neighbour graph,
    spectral clustering (``n_clusters`` by the eigengap when None) and a 2-D embedding."""
    from sklearn.cluster import SpectralClustering
    from sklearn.manifold import SpectralEmbedding

    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) < 4:
        raise InputError(f"SpRAy needs at least 4 maps (N, H, W); got shape {maps.shape}")
    features = downsize(maps, size)
    neighbours = n_neighbors or int(np.clip(np.sqrt(len(maps)), 3, 30))
    graph = affinity(features, neighbours)
    chosen, gaps = eigengap(graph)
    k = n_clusters or chosen
    clusters = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                  assign_labels="cluster_qr").fit_predict(graph)
    embedding = SpectralEmbedding(n_components=2, affinity="precomputed",
                                  random_state=seed).fit_transform(graph)
    return SprayResult(clusters, embedding, gaps, k)


def purity(clusters: np.ndarray, flags: np.ndarray) -> tuple[int, float]:
    """The cluster holding most flagged items and the share of flagged items in it."""
    flags = np.asarray(flags, dtype=bool)
    ids = np.unique(clusters)
    best = ids[np.argmax([flags[clusters == c].sum() for c in ids])]
    return int(best), float(flags[clusters == best].mean())
