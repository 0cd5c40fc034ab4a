import hashlib
import warnings

import numpy as np
import pytest
import torch

from xai_widgets.zoo import load_clever_hans, load_demo

warnings.filterwarnings("ignore", module="captum")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (long reference cases) run only when ``-m`` names the marker;
    CI runs them in a step of their own: ``python -m pytest -q -m slow tests``."""
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a long reference case: run it with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo():
    return load_demo("mnist")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module, restored afterwards: many small ops on tiny nets gain
    nothing from intra-op threads and lose much when the two cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hans():
    """The shipped Clever-Hans demo: the shortcut model, its clean twin, tagged digits."""
    return load_clever_hans()


@pytest.fixture(scope="session")
def clean(demo):
    """The held-out digits without any tag, and their labels."""
    return demo[1], demo[2]


@pytest.fixture
def model(demo):
    return demo[0]


@pytest.fixture
def images(demo):
    return demo[1]


@pytest.fixture
def image(demo):
    return demo[1][0]


def checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def assert_untouched(model: torch.nn.Module, before: str) -> None:
    """The user's model as they left it in train mode: its weights (``before`` is their
    checksum), every module's training flag, no gradients, no hooks."""
    assert checksum(model) == before
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


def max_relative_difference(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = max(np.abs(theirs).max(), 1e-12)
    return float(np.abs(ours - theirs).max() / scale)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium for the browser tests (tests/browser_support.py)."""
    from tests.browser_support import chromium

    with chromium() as instance:
        yield instance
