import numpy as np
import pytest
import torch

from xai_widgets import InputError
from xai_widgets.zoo import FASHION_MNIST_CLASSES, load_demo, load_idx, load_idx_dataset
from xai_widgets.zoo.idx import write_idx


def test_demo_model_is_accurate_on_held_out_digits(demo):
    model, images, labels, classes = demo
    assert images.shape == (1000, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert classes == [str(i) for i in range(10)]
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95
    assert not model.training


def test_unknown_demo():
    with pytest.raises(InputError, match="load_idx_dataset"):
        load_demo("fashion")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_dataset_roundtrip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels)
    x, y = load_idx_dataset(tmp_path, split="t10k")
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, labels)
    assert len(FASHION_MNIST_CLASSES) == 10


def test_idx_errors(tmp_path):
    with pytest.raises(InputError, match="no train-images-idx3-ubyte"):
        load_idx_dataset(tmp_path)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(InputError, match="not an IDX file"):
        load_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(InputError, match="truncated"):
        load_idx(tmp_path / "short")
