"""Dataset audits (xai_widgets.audit): every source, equality with explain_many, the store's
metadata, resuming after SIGKILL, refusals, the model left untouched, the Ray engine, SpRAy
over the stored maps (Audit.spray)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from tests.conftest import assert_untouched, checksum
from xai_widgets.batch import explain_many
from xai_widgets.errors import Cancelled, InputError
from xai_widgets.zoo.idx import write_idx

pytest.importorskip("zarr", reason="zarr is not installed: pip install xai_widgets[audit]")
from xai_widgets.audit import Audit, audit

ROOT = Path(__file__).resolve().parent.parent
FLOAT16 = dict(rtol=2e-3, atol=1e-6)  # float16 keeps 11 significant bits


def expected_maps(model, images, method, map_size, n_steps=8):
    maps = torch.from_numpy(explain_many(model, images, method=method, n_steps=n_steps))
    return F.interpolate(maps[:, None], size=(map_size, map_size), mode="area")[:, 0].numpy()


class Digits(Dataset):
    def __init__(self, images, labels=None):
        self.images, self.labels = images, labels
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads += 1
        image = self.images[index]
        return image if self.labels is None else (image, int(self.labels[index]))


@pytest.fixture(scope="module")
def digits(demo):
    model, images, labels, _ = demo
    return model, images[:48], labels[:48]


def test_array_and_tensor_equal_explain_many(digits, tmp_path):
    model, images, labels = digits
    want = expected_maps(model, images, "integrated_gradients", 14)
    calls = []
    a = audit(model, images, tmp_path / "t.zarr", n_steps=8, map_size=14, chunk_size=20,
              batch_size=64, labels=labels, progress=lambda d, n: calls.append((d, n)))
    np.testing.assert_allclose(a.maps[:].astype(np.float32), want, **FLOAT16)
    assert a.maps.dtype == np.float16 and a.maps.shape == (48, 14, 14)
    logits = model(images).detach()
    np.testing.assert_array_equal(a.predictions, logits.argmax(1).numpy())
    np.testing.assert_array_equal(a.labels, labels.numpy())
    top = torch.softmax(logits, 1).topk(5)
    np.testing.assert_array_equal(a.topk_classes, top.indices.numpy())
    np.testing.assert_allclose(a.topk_probabilities, top.values.numpy(), rtol=1e-5, atol=1e-6)
    assert calls == [(0, 48), (20, 48), (40, 48), (48, 48)]
    assert a.complete and a.failed == {} and len(a) == 48
    meta = a.metadata
    assert meta["identity"]["method"] == "integrated_gradients"
    assert meta["identity"]["model"] == a.metadata["identity"]["model"] and len(
        meta["identity"]["model"]) == 64
    assert meta["parameters"]["n_steps"] == 8 and meta["parameters"]["batch_size"] == 64
    assert {"torch", "captum", "zarr", "numpy", "xai_widgets"} <= set(meta["versions"])
    assert meta["identity"]["dataset_length"] == 48
    # a uint8 numpy array (N,H,W,C) of the same digits: same maps up to quantisation
    array = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    b = audit(model, array, tmp_path / "a.zarr", method="saliency", map_size=28)
    want = expected_maps(model, torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255,
                         "saliency", 28)
    np.testing.assert_allclose(b.maps[:].astype(np.float32), want, **FLOAT16)
    assert (b.labels == -1).all()


def test_dataset_and_dataloader(digits, tmp_path):
    model, images, labels = digits
    reference = audit(model, images, tmp_path / "r.zarr", method="saliency", map_size=32,
                      labels=labels, chunk_size=16)
    with_labels = audit(model, Digits(images, labels), tmp_path / "d.zarr",
                        method="saliency", map_size=32, chunk_size=16)
    no_labels = audit(model, Digits(images.numpy()), tmp_path / "n.zarr", method="saliency",
                      map_size=32, chunk_size=16)
    loader = audit(model, DataLoader(Digits(images, labels), batch_size=7), tmp_path / "l.zarr",
                   method="saliency", map_size=32, chunk_size=16)
    for other in (with_labels, no_labels, loader):
        np.testing.assert_array_equal(other.maps[:], reference.maps[:])
        np.testing.assert_array_equal(other.predictions, reference.predictions)
    np.testing.assert_array_equal(with_labels.labels, labels.numpy())
    np.testing.assert_array_equal(loader.labels, labels.numpy())
    assert (no_labels.labels == -1).all()
    with pytest.raises(InputError, match="shuffle=False"):
        audit(model, DataLoader(Digits(images), shuffle=True), tmp_path / "s.zarr")


def test_targets_a_class_and_the_labels(digits, tmp_path):
    model, images, labels = digits
    images, labels = images[:16], labels[:16].clone()
    fixed = audit(model, images, tmp_path / "c.zarr", method="input_x_gradient", targets=3,
                  map_size=28)
    want = explain_many(model, images, targets=3, method="input_x_gradient")
    np.testing.assert_allclose(fixed.maps[:].astype(np.float32), want, **FLOAT16)
    labels[:4] = -1  # unknown labels: the predicted class
    by_label = audit(model, images, tmp_path / "l.zarr", method="integrated_gradients",
                     n_steps=4, targets="labels", labels=labels, map_size=28)
    chosen = np.where(labels.numpy() >= 0, labels.numpy(), by_label.predictions)
    want = explain_many(model, images, targets=chosen, method="integrated_gradients", n_steps=4)
    np.testing.assert_allclose(by_label.maps[:].astype(np.float32), want, **FLOAT16)
    with pytest.raises(InputError, match="method 'occlusion' cannot audit"):
        audit(model, images, tmp_path / "o.zarr", method="occlusion")


def test_folder_with_a_corrupt_file(digits, tmp_path):
    model, images, labels = digits
    folder = tmp_path / "digits"
    pixels = (images[:6, 0].numpy() * 255).round().astype(np.uint8)
    for i, (image, label) in enumerate(zip(pixels, labels[:6].tolist(), strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / str(label) / f"{i:02d}.png")
    (folder / str(labels[0].item()) / "99_bad.png").write_bytes(b"not a png at all")
    a = audit(model, folder, tmp_path / "f.zarr", method="saliency", map_size=28)
    paths = sorted(p for p in folder.rglob("*.png"))
    bad = [p.name for p in paths].index("99_bad.png")
    assert len(a) == 7 and list(a.failed) == [bad]
    assert "UnidentifiedImageError" in a.failed[bad] or "cannot identify" in a.failed[bad]
    assert a.predictions[bad] == -1 and not a.maps[bad].any() and a.complete
    good = [i for i in range(7) if i != bad]
    order = [int(p.name[:2]) for p in paths if p.name != "99_bad.png"]
    want = expected_maps(model, torch.from_numpy(pixels[order]).float()[:, None] / 255,
                         "saliency", 28)
    np.testing.assert_allclose(a.maps[good].astype(np.float32), want, **FLOAT16)
    classes = sorted({str(v) for v in labels[:6].tolist()})
    np.testing.assert_array_equal(a.labels[good],
                                  [classes.index(p.parent.name) for p in paths
                                   if p.name != "99_bad.png"])


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files(digits, tmp_path, suffix):
    model, images, labels = digits
    pixels = (images[:, 0].numpy() * 255).round().astype(np.uint8)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", pixels)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels.numpy().astype(np.uint8))
    a = audit(model, tmp_path / f"t10k-images-idx3-ubyte{suffix}", tmp_path / "i.zarr",
              method="saliency", map_size=28, chunk_size=10)
    b = audit(model, pixels[:, None], tmp_path / "b.zarr", method="saliency", map_size=28,
              chunk_size=10)
    np.testing.assert_array_equal(a.maps[:], b.maps[:])
    np.testing.assert_array_equal(a.labels, labels.numpy())


def test_different_settings_are_refused_and_overwrite_starts_over(digits, tmp_path):
    model, images, _ = digits
    path = tmp_path / "run.zarr"
    audit(model, images[:8], path, method="saliency", map_size=14)
    again = audit(model, images[:8], path, method="saliency", map_size=14, batch_size=3)
    assert again.complete  # batch_size and engine may change: they do not change results
    with pytest.raises(InputError, match=r"method: the store has 'saliency', this call "
                                         r"'integrated_gradients'.*overwrite=True"):
        audit(model, images[:8], path, method="integrated_gradients", map_size=14)
    with pytest.raises(InputError, match="dataset_fingerprint"):
        audit(model, images[8:16], path, method="saliency", map_size=14)
    other = type(model)()
    with pytest.raises(InputError, match="model: the store has"):
        audit(other, images[:8], path, method="saliency", map_size=14)
    new = audit(model, images[:8], path, method="grad_cam", map_size=14, overwrite=True)
    assert new.metadata["identity"]["method"] == "grad_cam" and new.complete
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an audit store"):
        audit(model, images[:8], tmp_path / "mine", method="saliency", overwrite=True)
    assert (tmp_path / "mine" / "data.txt").exists()


def test_unwritable_store_is_refused_before_any_work(digits, tmp_path):
    model, images, _ = digits
    (tmp_path / "a_file").write_text("")
    dataset = Digits(images)
    with pytest.raises(InputError, match="cannot write the audit store"):
        audit(model, dataset, tmp_path / "a_file" / "run.zarr", method="saliency")
    assert dataset.reads == 0


def test_model_untouched_cancel_and_resume(digits, tmp_path):
    model, images, _ = digits
    model.train()
    try:
        before = checksum(model)
        path = tmp_path / "c.zarr"
        seen = []
        with pytest.raises(Cancelled):
            audit(model, images, path, method="integrated_gradients", n_steps=4, map_size=14,
                  chunk_size=16, progress=lambda d, n: seen.append(d),
                  cancelled=lambda: len(seen) >= 2)
        stopped = Audit(path).progress.done  # the chunk being written when cancelled is kept
        assert 16 <= stopped < 48
        assert_untouched(model, before)
        for method in ("integrated_gradients", "saliency", "input_x_gradient", "grad_cam"):
            audit(model, images[:8], tmp_path / f"{method}.zarr", method=method, n_steps=4)
            assert_untouched(model, before)
        seen.clear()
        a = audit(model, images, path, method="integrated_gradients", n_steps=4, map_size=14,
                  chunk_size=16, progress=lambda d, n: seen.append(d))
        assert seen == list(range(stopped, 49, 16)) and a.complete
        want = expected_maps(model.eval(), images, "integrated_gradients", 14, n_steps=4)
        np.testing.assert_allclose(a.maps[:].astype(np.float32), want, **FLOAT16)
    finally:
        model.eval()


def test_missing_zarr_names_the_extra(digits, tmp_path, monkeypatch):
    model, images, _ = digits
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(InputError, match=r"pip install xai_widgets\[audit\]"):
        audit(model, images[:4], tmp_path / "z.zarr")


CHILD = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from xai_widgets.audit import audit
    from xai_widgets.zoo import load_demo
    model, images, labels, classes = load_demo("mnist")
    data = images.repeat(3, 1, 1, 1)
    audit(model, data, sys.argv[1], method="saliency", map_size=14, chunk_size=100,
          progress=lambda done, total: time.sleep(0.2))
""")


def _done_chunks(path: Path) -> int:
    import zarr

    try:
        return int(np.asarray(zarr.open_array(path / "done", mode="r")[:]).sum())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_resume_after_sigkill(demo, tmp_path):
    model, images, _, _ = demo
    data = images.repeat(3, 1, 1, 1)  # 3,000 digits, 30 chunks of 100
    path = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env, cwd=ROOT,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _done_chunks(path) < 4:
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = Audit(path).progress.done
    assert 400 <= killed_at < 3000
    seen = []
    resumed = audit(model, data, path, method="saliency", map_size=14, chunk_size=100,
                    progress=lambda done, total: seen.append(done))
    assert seen[0] == killed_at and seen[-1] == 3000 and len(seen) == 1 + (3000 - killed_at) // 100
    whole = audit(model, data, tmp_path / "whole.zarr", method="saliency", map_size=14,
                  chunk_size=100)
    assert resumed.complete and resumed.rows_done.all() and len(resumed) == 3000
    np.testing.assert_array_equal(resumed.maps[:], whole.maps[:])
    for column in ("predictions", "labels", "topk_classes", "topk_probabilities"):
        np.testing.assert_array_equal(getattr(resumed, column), getattr(whole, column))
    assert (resumed.predictions >= 0).all() and resumed.failed == {}


def test_ray_engine_equals_local(digits, tmp_path):
    """Ray actors on a local cluster of 2 CPUs write the same store as the local engine,
    also when they finish a store the local engine began (and was cancelled in)."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install xai_widgets[scale]")
    model, images, labels = digits
    settings = dict(method="integrated_gradients", n_steps=4, map_size=14, chunk_size=10,
                    labels=labels)
    local = audit(model, images, tmp_path / "local.zarr", **settings)
    path = tmp_path / "ray.zarr"
    seen = []
    with pytest.raises(Cancelled):
        audit(model, images, path, progress=lambda d, n: seen.append(d),
              cancelled=lambda: len(seen) >= 2, **settings)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        seen.clear()
        remote = audit(model, images, path, engine="ray", batch_size=64,
                       progress=lambda d, n: seen.append(d), **settings)
    finally:
        ray.shutdown()
    assert 10 <= seen[0] < 48 and sorted(seen) == seen and seen[-1] == 48
    assert len(seen) == 1 + len(range(seen[0], 48, 10))
    assert remote.complete
    np.testing.assert_allclose(remote.maps[:].astype(np.float32),
                               local.maps[:].astype(np.float32), **FLOAT16)
    for column in ("predictions", "labels", "topk_classes"):
        np.testing.assert_array_equal(getattr(remote, column), getattr(local, column))
    np.testing.assert_allclose(remote.topk_probabilities, local.topk_probabilities, rtol=1e-5)
