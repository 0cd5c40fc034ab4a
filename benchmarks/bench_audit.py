"""Dataset audits: throughput of the local engine against the floor, memory against dataset
size, and the Ray engine.

    python benchmarks/bench_audit.py [--n 10000 30000 60000] [--method saliency]
                                     [--n-steps 8] [--map-size 28] [--ray 10000]
                                     [--spray 60000]

The dataset is the 1,000 shipped held-out digits tiled to n images with small shifts
(±2 px) and contrast changes, made item by item in a torch Dataset (nothing held per image),
so memory stays flat only if the audit streams. Each size runs in a fresh subprocess
(1 torch thread, or $BENCH_THREADS), which reports:

- audit: ``audit(model, dataset, store, ...)`` wall time, images/s (reading, forward +
  explanation, resizing, writing the Zarr store to a temporary folder);
- floor: the same batched forward/backward passes (same pass sizes, as many images) on one
  pre-made batch, with nothing else, timed before and after the audit (the mean: other load
  on the machine varies); ratio = audit throughput / floor throughput (goal ≥ 0.8);
- memory: growth of the process's peak RSS (``resource.getrusage().ru_maxrss``) during the
  audit, over the peak after loading the model and making the dataset (goal: flat within
  10 % from 10k to 60k images).

- SpRAy: ``a.spray()`` (``spray_large`` over the stored maps, read out of core from the
  Zarr store; k by the eigengap, 14×14 features, 10 neighbours) on the audit of ``--spray``
  images (default 60,000; that size is audited even when ``--n`` leaves it out; 0: skip),
  its wall time, the k found and the growth of peak RSS over the audit's peak.

``--ray N`` also audits N images with ``engine="ray"`` on a local Ray instance with
$BENCH_RAY_CPUS (default 2) CPUs, one single-threaded actor per CPU; ``ray.init`` is timed
apart, the actors' start-up is counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table
from xai_widgets.audit import audit
from xai_widgets.zoo import load_demo


class TiledDigits(Dataset):
    """n augmented copies of the shipped digits, each made when it is read."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n: int):
        self.images, self.labels, self.n = images, labels, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        h = (index * 2654435761) & 0xFFFFFFFF  # a cheap deterministic hash of the index
        image = self.images[index % len(self.images)]
        shifted = torch.roll(image, shifts=(h % 5 - 2, (h >> 8) % 5 - 2), dims=(1, 2))
        contrast = 0.8 + 0.2 * ((h >> 16) % 101) / 100
        return shifted * contrast, int(self.labels[index % len(self.labels)])


def floor_seconds(model, n: int, method: str, n_steps: int, batch_size: int) -> float:
    """The batched forward+backward passes an audit of n images needs, and nothing else."""
    per_image = n_steps if method == "integrated_gradients" else 1
    per_pass = max(1, batch_size // per_image)
    x = torch.rand(per_pass * per_image, 1, 28, 28)
    targets = torch.arange(len(x)) % 10
    start = time.perf_counter()
    for _ in range(-(-n // per_pass)):
        inputs = x.clone().requires_grad_(True)
        scores = model(inputs).gather(1, targets[:, None]).sum()
        torch.autograd.grad(scores, inputs)
    if method == "integrated_gradients":  # the predictions' forward pass without gradients
        whole = torch.rand(batch_size, 1, 28, 28)
        with torch.no_grad():
            for _ in range(-(-n // batch_size)):
                model(whole)
    return time.perf_counter() - start


def child(args) -> dict:
    """One size in this (fresh) process: audit, then the floor."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 1)))
    model, images, labels, _ = load_demo("mnist")
    data = TiledDigits(images, labels, args.child)
    settings = dict(method=args.method, n_steps=args.n_steps, map_size=args.map_size,
                    batch_size=args.batch_size, chunk_size=args.chunk_size)
    floor_before = floor_seconds(model, args.child, args.method, args.n_steps,
                                 args.batch_size) if args.engine == "local" else None
    with tempfile.TemporaryDirectory() as folder:
        audit(model, TiledDigits(images, labels, 512), Path(folder) / "warm.zarr", **settings)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start_up = 0.0
        if args.engine == "ray":
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=int(os.environ.get("BENCH_RAY_CPUS", 2)),
                     include_dashboard=False, log_to_driver=False)
            start_up = time.perf_counter() - start
        start = time.perf_counter()
        result = audit(model, data, Path(folder) / "run.zarr", engine=args.engine, **settings)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert result.complete and len(result) == args.child
        store_mb = sum(p.stat().st_size for p in (Path(folder) / "run.zarr").rglob("*")
                       if p.is_file()) / 2**20
        spray = {}
        if args.spray_too:
            start = time.perf_counter()
            clustered = result.spray()
            spray = {"spray_s": time.perf_counter() - start, "spray_k": clustered.n_clusters,
                     "spray_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                         - after) / 1024}
    floor = None
    if args.engine == "local":  # the mean of two runs, before and after (the load varies)
        floor = (floor_before + floor_seconds(model, args.child, args.method, args.n_steps,
                                              args.batch_size)) / 2
    return {"n": args.child, "seconds": seconds, "floor": floor, "start_up": start_up,
            "before_mb": before / 1024, "growth_mb": (after - before) / 1024, "store_mb": store_mb,
            **spray}


def run_child(args, n: int, engine: str, spray: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", str(n), "--engine", engine,
               "--method", args.method, "--n-steps", str(args.n_steps),
               "--map-size", str(args.map_size), "--batch-size", str(args.batch_size),
               "--chunk-size", str(args.chunk_size)] + (["--spray-too"] if spray else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    parser.add_argument("--method", default="saliency")
    parser.add_argument("--n-steps", type=int, default=8)
    parser.add_argument("--map-size", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--ray", type=int, default=0, help="images for the Ray engine (0: skip)")
    parser.add_argument("--spray", type=int, default=60_000,
                        help="time a.spray() on the audit of this many images (0: skip)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--spray-too", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    print(f"method {args.method}" + (f" ({args.n_steps} steps)" if args.method ==
                                     "integrated_gradients" else "")
          + f", map_size {args.map_size}, batch {args.batch_size}, chunk {args.chunk_size}, "
          f"{os.environ.get('BENCH_THREADS', 1)} torch thread(s)")
    rows = []
    sizes = list(args.n) + ([args.spray] if args.spray and args.spray not in args.n else [])
    for n in sizes:
        r = run_child(args, n, "local", spray=n == args.spray)
        rows.append({"engine": "local", "images": f"{n:,}", "audit s": f"{r['seconds']:.1f}",
                     "images/s": f"{n / r['seconds']:,.0f}",
                     "floor images/s": f"{n / r['floor']:,.0f}",
                     "vs floor": f"{r['floor'] / r['seconds']:.2f}×",
                     "peak RSS growth MB": f"{r['growth_mb']:.1f}",
                     "RSS before MB": f"{r['before_mb']:.0f}",
                     "store MB": f"{r['store_mb']:.1f}"})
        if "spray_s" in r:
            rows[-1].update({"SpRAy s": f"{r['spray_s']:.1f}", "SpRAy k": str(r["spray_k"]),
                             "SpRAy RSS growth MB": f"{r['spray_growth_mb']:.0f}"})
        print(rows[-1], flush=True)
    if args.ray:
        r = run_child(args, args.ray, "ray")
        rows.append({"engine": f"ray ({os.environ.get('BENCH_RAY_CPUS', 2)} actors; "
                               f"ray.init {r['start_up']:.1f} s not counted)",
                     "images": f"{args.ray:,}", "audit s": f"{r['seconds']:.1f}",
                     "images/s": f"{args.ray / r['seconds']:,.0f}",
                     "peak RSS growth MB": f"{r['growth_mb']:.1f} (driver)",
                     "RSS before MB": f"{r['before_mb']:.0f}",
                     "store MB": f"{r['store_mb']:.1f}"})
    print(table(rows, ["engine", "images", "audit s", "images/s", "floor images/s", "vs floor",
                       "peak RSS growth MB", "RSS before MB", "store MB", "SpRAy s", "SpRAy k",
                       "SpRAy RSS growth MB"]))


if __name__ == "__main__":
    main()
