"""SpRAy over an audit's stored maps (``Audit.spray``): equal to ``spray_large`` on the same
maps, kept in the store, restricted to classes, refused on an incomplete audit, blind to
failed rows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xai_widgets.errors import Cancelled, InputError

pytest.importorskip("zarr", reason="zarr is not installed: pip install xai_widgets[audit]")
from xai_widgets.audit import Audit, audit


@pytest.fixture(scope="module")
def digits(demo):
    model, images, labels, _ = demo
    return model, images[:48], labels[:48]


# -- SpRAy over the stored maps (Audit.spray) --------------------------------------------
def _same_result(got, want, rows):
    """Audit.spray's full-length result on ``rows`` equals spray_large's on those maps."""
    np.testing.assert_array_equal(got.clusters[rows], want.clusters)
    np.testing.assert_array_equal(got.embedding[rows], want.embedding.astype(np.float32))
    np.testing.assert_array_equal(got.eigengaps, want.eigengaps)
    assert got.n_clusters == want.n_clusters


def test_spray_equals_spray_large_and_is_stored(demo, tmp_path):
    from xai_widgets.audit.clusters import attributes
    from xai_widgets.spray_large import spray_large

    model, images, labels, _ = demo
    path = tmp_path / "s.zarr"
    settings = dict(method="saliency", map_size=14, chunk_size=32, labels=labels[:150])
    a = audit(model, images[:150], path, **settings)
    assert a.clusters is None and a.embedding is None and attributes(path) is None
    calls = []
    result = a.spray(progress=lambda d, n: calls.append((d, n)))
    _same_result(result, spray_large(a.maps[:]), np.arange(150))
    assert calls[-1] == (302, 302) and result.clusters.shape == (150,)
    again = Audit(path)  # reopened: the arrays and the attribute are found
    assert again.clusters.dtype == np.int32 and again.embedding.dtype == np.float32
    np.testing.assert_array_equal(again.clusters, result.clusters)
    np.testing.assert_array_equal(again.embedding, result.embedding)
    stored = attributes(path)
    assert stored["n_clusters"] == result.n_clusters and stored["classes"] is None
    assert stored["k"] == "auto" and stored["size"] == 14 and stored["n_neighbors"] == 10
    assert stored["rows"] == 150 and np.allclose(stored["eigengaps"], result.eigengaps)
    resumed = audit(model, images[:150], path, **settings)  # not part of the audit identity
    assert resumed.complete and np.array_equal(resumed.clusters, result.clusters)
    fixed = Audit(path).spray(k=3, n_neighbors=5)  # re-running overwrites
    _same_result(fixed, spray_large(a.maps[:], n_clusters=3, n_neighbors=5), np.arange(150))
    assert attributes(path)["n_clusters"] == 3 and attributes(path)["k"] == 3
    np.testing.assert_array_equal(Audit(path).clusters, fixed.clusters)


def test_spray_restricted_to_classes(demo, tmp_path):
    from xai_widgets.audit.clusters import RowSubset, attributes
    from xai_widgets.spray_large import spray_large

    model, images, _, _ = demo
    path = tmp_path / "c.zarr"
    a = audit(model, images[:200], path, method="saliency", map_size=14, chunk_size=16)
    rows = np.flatnonzero(np.isin(a.predictions, [1, 7]))
    assert 20 < len(rows) < 200
    result = a.spray(classes=[7, 1])
    _same_result(result, spray_large(a.maps[:][rows]), rows)
    others = np.setdiff1d(np.arange(200), rows)
    stored = Audit(path)
    assert (stored.clusters[others] == -1).all() and (stored.clusters[rows] >= 0).all()
    assert np.isnan(stored.embedding[others]).all() and np.isfinite(stored.embedding[rows]).all()
    assert attributes(path)["classes"] == [1, 7] and attributes(path)["rows"] == len(rows)
    one = a.spray(classes=7)
    sevens = np.flatnonzero(a.predictions == 7)
    _same_result(one, spray_large(a.maps[:][sevens]), sevens)
    with pytest.raises(InputError, match="at least 4 maps"):
        a.spray(classes=[99])
    with pytest.raises(InputError, match="classes must be"):
        a.spray(classes="seven")
    subset = RowSubset(a.maps, rows, 16)  # slices read chunk by chunk, in any window
    every = a.maps[:][rows]
    for window in (slice(0, 7), slice(5, 40), slice(len(rows) - 3, None), slice(3, 3)):
        np.testing.assert_array_equal(subset[window], every[window])


def test_spray_refuses_an_incomplete_audit(demo, tmp_path):
    model, images, _, _ = demo
    path = tmp_path / "i.zarr"
    seen = []
    with pytest.raises(Cancelled):
        audit(model, images[:64], path, method="saliency", map_size=14, chunk_size=16,
              progress=lambda d, n: seen.append(d), cancelled=lambda: len(seen) >= 2)
    partial = Audit(path)
    assert not partial.complete
    with pytest.raises(InputError, match=r"incomplete \(\d+ of 64 rows done\): resume it first"):
        partial.spray()
    assert partial.clusters is None and partial.embedding is None


def test_spray_skips_failed_rows(digits, tmp_path):
    from xai_widgets.spray_large import spray_large

    model, images, _ = digits
    folder = tmp_path / "digits"
    pixels = (images[:20, 0].numpy() * 255).round().astype(np.uint8)
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    (folder / "07_bad.png").write_bytes(b"not a png")
    a = audit(model, folder, tmp_path / "f.zarr", method="saliency", map_size=14, chunk_size=8)
    bad = sorted(p.name for p in folder.glob("*.png")).index("07_bad.png")
    assert list(a.failed) == [bad] and a.complete
    result = a.spray(n_neighbors=5)
    good = np.array([i for i in range(21) if i != bad])
    _same_result(result, spray_large(a.maps[:][good], n_neighbors=5), good)
    assert Audit(a.path).clusters[bad] == -1 and np.isnan(Audit(a.path).embedding[bad]).all()
    assert (Audit(a.path).clusters[good] >= 0).all()
