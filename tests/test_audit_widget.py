"""DatasetWidget over a stored audit: pages, filters, lazy reads, clusters, opening a row."""

import numpy as np
import pytest
import torch

from tests.test_widget import TIMEOUT
from xai_widgets import DatasetWidget, InputError, audit
from xai_widgets.audit import Audit
from xai_widgets.widgets.audit_widget import ALL, AuditWidget

pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def stored(tmp_path_factory, demo):
    model, images, labels, _ = demo
    path = tmp_path_factory.mktemp("audit") / "digits.zarr"
    a = audit(model, images[:300], store=path, method="saliency", labels=labels[:300],
              map_size=14, chunk_size=64)
    return a, model, images[:300], labels[:300]


def test_pages_over_the_store_reading_only_the_page(stored):
    a = stored[0]
    view = DatasetWidget(a, page_size=25)
    try:
        assert isinstance(view, AuditWidget) and view.pages() == 12
        reads = []
        original = view.source.read
        view.source.read = lambda ranges: (reads.append(ranges), original(ranges))[1]
        view.next.click()
        assert view.page == 1 and list(view.page_rows) == list(range(25, 50))
        assert sum(stop - start for r in reads for start, stop in r) == 25  # the page only
        np.testing.assert_array_equal(view.tiles.captions[0].split()[0], "#25")
        stored_maps = np.asarray(a.maps[25:50], np.float32)
        shown = np.frombuffer(view.tiles.maps["buffer"], np.float32).reshape(25, 14, 14)
        np.testing.assert_array_equal(shown, stored_maps)
        view.previous.click()
        assert view.page == 0 and view.previous.disabled and not view.next.disabled
        view.show_page(99)  # past the end: the last page
        assert view.page == 11 and view.next.disabled and len(view.page_rows) == 25
        assert "300 of 300 rows explained (saliency)" in view.summary.value
        assert "accuracy" in view.summary.value
    finally:
        view.close()


def test_filters_by_label_and_prediction(stored):
    a, _, _, labels = stored
    view = DatasetWidget(a, page_size=10)
    try:
        view.label_filter.value = 3
        assert (a.labels[view.matching] == 3).all()
        assert view.matching.size == int((labels == 3).sum())
        view.prediction_filter.value = 5  # 3s the model calls 5 (maybe none)
        assert ((a.labels[view.matching] == 3) & (a.predictions[view.matching] == 5)).all()
        view.label_filter.value = view.prediction_filter.value = ALL
        assert view.matching.size == 300 and view.page == 0
        assert view.cluster_filter.layout.display == "none"  # no clusters yet
    finally:
        view.close()


def test_clicking_a_thumbnail_explains_that_row(stored):
    a, _, images, _ = stored
    view = DatasetWidget(a, page_size=10)
    try:
        view.next.click()
        view.tiles.selected = 3
        assert view.selected == 13 and view.explainer is not None
        torch.testing.assert_close(view.explainer.state.image[0], images[13])
        assert view.explainer.wait(TIMEOUT).method == "saliency"
    finally:
        view.close()


def test_a_reopened_audit_needs_the_model_and_dataset_to_open_rows(stored):
    a, model, images, _ = stored
    reopened = Audit(a.path)
    view = DatasetWidget(reopened, page_size=10)
    try:
        assert view.tiles.captions  # the maps show without the dataset
        view.tiles.selected = 0
        assert view.explainer is None and "model=model" in view.detail.children[0].value
    finally:
        view.close()
    view = DatasetWidget(reopened, model=model, dataset=images, page_size=10)
    try:
        view.tiles.selected = 1
        torch.testing.assert_close(view.explainer.state.image[0], images[1])
    finally:
        view.close()
    with pytest.raises(InputError, match="the dataset has 10 images, the audit 300 rows"):
        DatasetWidget(reopened, model=model, dataset=images[:10])


def test_failed_rows_are_left_out_and_counted(tmp_path, demo):
    from PIL import Image

    model = demo[0]
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(6):
        pixels = (demo[1][i, 0].numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    (folder / "6.png").write_bytes(b"not an image")
    a = audit(model, folder, store=tmp_path / "f.zarr", method="saliency", map_size=14)
    view = DatasetWidget(a)
    try:
        assert 6 not in view.matching and view.matching.size == 6
        assert "1 failed rows" in view.summary.value
    finally:
        view.close()


def test_the_cluster_button_runs_spray_and_the_filter_follows(tmp_path, demo):
    import time

    model, images, labels, _ = demo
    a = audit(model, images[:200], store=tmp_path / "c.zarr", method="saliency",
              labels=labels[:200], map_size=14, chunk_size=64)
    view = DatasetWidget(a, page_size=10)
    try:
        view.cluster_button.click()
        deadline = time.monotonic() + TIMEOUT
        while view.cluster_button.disabled and time.monotonic() < deadline:
            time.sleep(0.05)
        clusters = a.clusters
        assert clusters is not None and view.cluster_filter.layout.display is None
        first = view.cluster_filter.options[1][1]
        view.cluster_filter.value = first
        assert view.matching.size == int((clusters == first).sum()) > 0
        assert (clusters[view.page_rows] == first).all()
        assert "SpRAy clusters" in view.summary.value
    finally:
        view.close()
