"""spray_large(): agreement with spray() on small inputs, batched reads, no dense N×N,
disconnected graphs, progress and cancellation, bad input."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from xai_widgets import spray_large as spray_large_module
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.spray import spray
from xai_widgets.spray_large import spray_large


def strategies(counts=(120, 100, 80), side=16, noise=0.15, seed=0):
    """Maps from len(counts) planted strategies (blobs at different places) plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    centres = [(4, 4), (11, 11), (4, 11), (11, 4)]
    maps, truth = [], []
    for label, count in enumerate(counts):
        cy, cx = centres[label]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
        maps.append(blob + rng.normal(0, noise, (count, side, side)))
        truth += [label] * count
    return np.concatenate(maps).astype(np.float32), np.array(truth)


class Reader:
    """An array-like that only hands out slices of at most ``limit`` rows and counts them."""

    def __init__(self, data, limit):
        self.data, self.limit, self.rows, self.calls = data, limit, 0, 0
        self.shape, self.dtype = data.shape, data.dtype

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        assert isinstance(index, slice), f"read with {index!r}, not a slice"
        chunk = self.data[index]
        assert len(chunk) <= self.limit, f"{len(chunk)} rows read at once"
        self.rows += len(chunk)
        self.calls += 1
        return chunk

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


@pytest.mark.parametrize("counts", [(120, 100, 80), (160, 140)])
def test_agrees_with_spray_on_small_inputs(counts):
    maps, truth = strategies(counts, noise=0.7)  # noisy enough for one connected graph
    dense = spray(maps, n_neighbors=10)
    large = spray_large(maps, n_neighbors=10, batch=64)
    assert large.n_clusters == dense.n_clusters == len(counts)
    assert adjusted_rand_score(dense.clusters, large.clusters) >= 0.9
    assert adjusted_rand_score(truth, large.clusters) >= 0.9
    np.testing.assert_allclose(large.eigengaps, dense.eigengaps, atol=1e-4)
    assert large.embedding.shape == (len(maps), 2) and np.isfinite(large.embedding).all()
    # the same 2-D embedding up to a rotation within the (near-)degenerate subspace
    fit, *_ = np.linalg.lstsq(large.embedding, dense.embedding, rcond=None)
    residual = dense.embedding - large.embedding @ fit
    assert (residual ** 2).sum() < 0.05 * (dense.embedding ** 2).sum()


def test_fixed_k_deterministic_order_and_float16():
    maps, truth = strategies((150, 90, 60))
    first = spray_large(maps.astype(np.float16), n_clusters=3, batch=50)
    again = spray_large(maps.astype(np.float16), n_clusters=3, batch=50)
    np.testing.assert_array_equal(first.clusters, again.clusters)
    np.testing.assert_array_equal(first.embedding, again.embedding)
    assert np.bincount(first.clusters).tolist() == [150, 90, 60]  # numbered by size
    assert adjusted_rand_score(truth, first.clusters) == 1.0
    more = spray_large(maps, n_clusters=5, batch=50)
    assert more.n_clusters == 5 and len(np.unique(more.clusters)) == 5
    assert np.all(np.diff(np.bincount(more.clusters)) <= 0)


def test_reads_in_batches_and_never_builds_a_dense_square():
    maps, truth = strategies((700, 700, 600), noise=0.1)
    reader = Reader(maps, limit=128)
    tracemalloc.start()
    result = spray_large(reader, batch=128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # three components of 600–700 maps: each goes through ARPACK
    assert reader.rows == len(maps) and reader.calls == -(-len(maps) // 128)
    assert peak < len(maps) ** 2 * 8 / 4, f"peak {peak / 1e6:.1f} MB"  # dense N×N: 32 MB
    assert result.n_clusters == 3 and adjusted_rand_score(truth, result.clusters) >= 0.95


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_disconnected_graph():
    maps, truth = strategies((40, 30, 20), noise=0.02)  # 5 neighbours never leave a group
    result = spray_large(maps, n_neighbors=5, batch=32)
    assert result.eigengaps[0] == pytest.approx(0, abs=1e-9)
    assert result.eigengaps[1] == pytest.approx(0, abs=1e-9)  # three zero eigenvalues
    assert result.n_clusters == 3 and adjusted_rand_score(truth, result.clusters) == 1.0
    assert np.isfinite(result.embedding).all()
    dense = spray(maps, n_neighbors=5)
    assert dense.n_clusters == 3
    np.testing.assert_allclose(result.eigengaps, dense.eigengaps, atol=1e-6)


def test_large_component_uses_the_sparse_solver(monkeypatch):
    maps, truth = strategies((500, 400), noise=0.7)  # one component above the dense cutoff
    calls = []
    solver = spray_large_module._arpack
    monkeypatch.setattr(spray_large_module, "_arpack",
                        lambda *args: calls.append(args[0].shape) or solver(*args))
    result = spray_large(maps, batch=256)
    assert calls == [(900, 900)]
    dense = spray(maps, n_neighbors=10)
    np.testing.assert_allclose(result.eigengaps, dense.eigengaps, atol=1e-4)
    assert result.n_clusters == dense.n_clusters == 2
    assert adjusted_rand_score(truth, result.clusters) >= 0.95


def test_progress_and_cancellation():
    maps, _ = strategies((60, 40))
    seen = []
    spray_large(maps, batch=32, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2 * len(maps) + 2, 2 * len(maps) + 2)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        spray_large(maps, batch=32, cancelled=cancelled)


@pytest.mark.parametrize("maps, kwargs, message", [
    (np.zeros((3, 8, 8)), {}, "at least 4 maps"),
    (np.zeros((10, 64)), {}, "(N, H, W)"),
    ([[1.0]], {}, "array-like of shape"),
    (np.full((10, 8, 8), "a"), {}, "numeric"),
    (np.zeros((10, 8, 8)), {"n_clusters": 1}, "n_clusters"),
    (np.zeros((10, 8, 8)), {"n_clusters": "three"}, "n_clusters"),
    (np.zeros((10, 8, 8)), {"n_clusters": 10}, "n_clusters"),
    (np.zeros((10, 8, 8)), {"n_neighbors": 0}, "n_neighbors"),
    (np.zeros((10, 8, 8)), {"batch": 2.5}, "batch"),
    (np.zeros((10, 8, 8)), {"size": -1}, "size"),
])
def test_bad_input(maps, kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spray_large(maps, **kwargs)


def test_non_finite_map_is_named():
    maps, _ = strategies((30, 30))
    maps[37, 2, 3] = np.nan
    with pytest.raises(InputError, match="map 37"):
        spray_large(maps, batch=16)
