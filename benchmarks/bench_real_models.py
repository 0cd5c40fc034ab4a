"""Every method on real architectures at 224 px, one target: ours, the floor, the library.

    python benchmarks/bench_real_models.py [--models resnet50 convnext_tiny vit_b_16]
                                           [--methods saliency occlusion ...] [--quick]

Per model (torchvision, random weights, no download), one 224×224 photo, the predicted
class as the target, and per method:

- ours: ``compute`` as the widget calls it (rounds delivered to a listener), seconds;
- first map: seconds until the first progressive round reached the listener (slow methods);
- floor: the forward (+backward) passes the method must do, batched like ours, timed in
  the same run (plain ``model(x)``, no attribution code);
- library: captum's / shap's / lime's own call with its default arguments and our step
  and sample counts (a library call that would not fit in memory is skipped and says so);
- peak: the largest extra resident memory during our call (VmHWM, reset before each call),
  against the memory budget.

``--quick`` uses fewer samples for the perturbation methods (LIME, KernelSHAP: 200; the
GradientExplainer: 50) so the whole run takes minutes instead of an hour; the ratios
compare equal work either way. The figures in ``docs/benchmarks.md`` come from this script.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from benchmarks.library_calls import LIBRARY, floor_work
from tests.real_models import import_torchvision, rgb_image
from xai_widgets import methods
from xai_widgets.adapter import ModelAdapter
from xai_widgets.budget import default_budget, images_per_pass, measure
from xai_widgets.compute import compute

warnings.filterwarnings("ignore")
METHODS = ["saliency", "input_x_gradient", "integrated_gradients", "smoothgrad",
           "gradient_shap", "guided_backprop", "deeplift", "grad_cam", "lrp", "occlusion",
           "lime", "kernel_shap", "deep_shap", "gradient_explainer", "attention_rollout",
           "attention_relevance"]
QUICK = {"lime": {"n_samples": 200}, "kernel_shap": {"n_samples": 200},
         "gradient_explainer": {"n_samples": 50}}


def build(name: str) -> torch.nn.Module:
    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    if name.startswith("vit"):  # torchvision zero-initialises the head
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def peak_reset() -> int:
    """Reset the process's peak resident memory (Linux) and return the current one."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_model(name: str, chosen: list[str], quick: bool) -> list[dict]:
    model = build(name)
    adapter = ModelAdapter(model)
    image, _ = adapter.image(rgb_image(224))
    target = int(adapter.logits(image).argmax())
    budget = default_budget(image.device)
    seconds, _ = timed(lambda: measure(adapter, image))
    per_pass = min(256, images_per_pass(adapter, image, budget))  # as ours
    print(f"\n{name}: target {target}, one-time cost measurement {seconds:.1f} s, "
          f"{per_pass} images per pass, budget {budget / 2**30:.2f} GiB", flush=True)
    available = methods.available(adapter)
    rows = []
    for label in chosen:
        method, params = ("saliency", {"smoothing": "smoothgrad"}) if label == "smoothgrad" \
            else (label, {})
        params.update(QUICK.get(method, {}) if quick else {})
        row = {"method": label}
        if available.get(method):
            rows.append({**row, "ours (s)": "n/a: " + available[method][:60]})
            print(f"  {label:22s} n/a: {available[method][:90]}", flush=True)
            continue
        resolved = methods.spec(method).resolve(params, (224, 224))
        try:
            ours, first, peak = run_ours(adapter, image, method, target, params)
            cold = None
            if ours < 5:  # cheap: time it again warm, as the widget's next change runs it
                cold = ours
                ours, first, peak = run_ours(adapter, image, method, target, params)
        except Exception as error:  # noqa: BLE001 - a failure is a row of the table
            rows.append({**row, "ours (s)": f"error: {str(error)[:80]}"})
            print(f"  {label:22s} error: {error}", flush=True)
            continue
        kind, n_images = floor_work(method, resolved)
        floor = floor_seconds(model, image, kind, n_images, per_pass)
        library = LIBRARY.get(method)
        lib_seconds, lib_note = (None, "—") if library is None else \
            run_library(library, model, adapter, image, target, resolved)
        rows.append({
            **row, "ours (s)": f"{ours:.2f}",
            "first call (s)": f"{cold:.2f}" if cold is not None else "—",
            "first map (s)": f"{first:.2f} ({first / ours:.0%})" if first else "—",
            "floor (s)": f"{floor:.2f}", "floor work": f"{kind} ×{n_images}",
            "ours / floor": f"{ours / floor:.2f}×",
            "library (s)": f"{lib_seconds:.2f}" if lib_seconds is not None else lib_note,
            "library / ours": f"{lib_seconds / ours:.1f}×" if lib_seconds is not None else "—",
            "peak (MiB)": f"{peak / 2**20:.0f}" + ("" if peak <= budget else " ⚠ over budget")})
        print(f"  {label:22s} " + "  ".join(f"{k} {v}" for k, v in rows[-1].items()
                                            if k != "method"), flush=True)
    return rows


def run_ours(adapter, image, method: str, target: int, params: dict):
    """Seconds of our call as the widget makes it (rounds to a listener), seconds to the
    first round (or None), and the extra peak resident memory."""
    first = []
    start = time.perf_counter()
    before = peak_reset()
    compute(adapter, image, method, [target], params, max_seconds=None,
            on_round=lambda e: first or first.append(time.perf_counter() - start))
    seconds = time.perf_counter() - start
    return seconds, (first[0] if first else None), _status("VmHWM") - before


def floor_seconds(model, image: torch.Tensor, kind: str, n_images: int, per_pass: int) -> float:
    """``n_images`` plain forward (+backward) passes in batches of ``per_pass``."""
    start = time.perf_counter()
    for first in range(0, n_images, per_pass):
        x = image.expand(min(per_pass, n_images - first), -1, -1, -1).clone()
        if kind == "forward":
            with torch.no_grad():
                model(x)
        else:
            x.requires_grad_(True)
            torch.autograd.grad(model(x)[:, 0].sum(), x)
    return time.perf_counter() - start


def run_library(library, model, adapter, image, target, params) -> tuple[float | None, str]:
    """The library's call on a copy: a call that fails half-way can leave its hooks on the
    model (captum's DeepLift on in-place ReLUs does), which must not reach our next call."""
    model, image = copy.deepcopy(model), image.clone()  # captum marks inputs requires_grad
    try:
        return timed(lambda: library(model, adapter, image, target, params))[0], ""
    except MemoryError as error:
        return None, f"skipped: {error}"
    except Exception as error:  # noqa: BLE001 - the library's own failure is the finding
        return None, f"fails: {type(error).__name__}: {' '.join(str(error).split())[:70]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny", "vit_b_16"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, one 224×224 photo, "
          f"one target{', quick sample counts' if args.quick else ''}")
    for name in args.models:
        rows = run_model(name, args.methods, args.quick)
        print(f"\n### {name}\n")
        print(table(rows, ["method", "ours (s)", "first call (s)", "first map (s)", "floor (s)",
                           "floor work", "ours / floor", "library (s)", "library / ours",
                           "peak (MiB)"]))
        print(flush=True)
    np.random.seed(0)


if __name__ == "__main__":
    main()
