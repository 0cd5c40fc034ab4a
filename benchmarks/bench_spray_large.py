"""Out-of-core SpRAy (``spray_large``) on 10k, 30k and 60k synthetic 28×28 maps.

    python benchmarks/bench_spray_large.py [--sizes 10000 30000 60000] [--threads 1]

The maps are written once to a float16 memmap in /tmp: three planted strategies (relevance
on the digit's centre stroke, on a corner tag, on the left border; 50 / 30 / 20 %) with a
random position jitter of ±2 px, a random strength and Gaussian noise. Each size runs in a
fresh subprocess reading the first N rows of the memmap, with BLAS/OpenMP/torch limited to
``--threads`` threads. Reported per size: wall time of ``spray_large`` (one run), its peak
Python-heap memory (tracemalloc: numpy/scipy/sklearn arrays, not C-level scratch), the
process's peak resident set growth during the call (ru_maxrss after a 64-map warm-up call;
it also counts the memmap pages read), the k the eigengap chose and the adjusted Rand index
against the planted strategies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import table

PATH = Path("/tmp/bench_spray_large_maps.npy")
SIDE = 28


def planted(n: int, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """Write n maps to the memmap (chunk by chunk) and return the planted strategy ids."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    maps = np.lib.format.open_memmap(PATH, mode="w+", dtype=np.float16, shape=(n, SIDE, SIDE))
    yy, xx = np.mgrid[:SIDE, :SIDE]
    centres = np.array([(14, 14), (4, 23), (14, 3)])
    widths = np.array([5.0, 2.0, 2.5])
    for start in range(0, n, chunk):
        label = truth[start:start + chunk]
        m = len(label)
        cy, cx = (centres[label] + rng.integers(-2, 3, (m, 2))).T
        strength = rng.uniform(0.5, 1.5, m)
        blob = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2)
                      / (2 * widths[label][:, None, None] ** 2))
        maps[start:start + m] = strength[:, None, None] * blob + rng.normal(0, 0.3, blob.shape)
    maps.flush()
    del maps
    return truth


def measure(n: int, threads: int) -> dict:
    """One spray_large run on the first n maps (called in a fresh subprocess)."""
    import resource
    import time
    import tracemalloc

    import torch
    from threadpoolctl import threadpool_limits

    from xai_widgets.spray_large import spray_large

    torch.set_num_threads(threads)
    maps = np.load(PATH, mmap_mode="r")[:n]
    spray_large(maps[:64])  # imports and first-call set-up outside the measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with threadpool_limits(threads):
        tracemalloc.start()
        start = time.perf_counter()
        result = spray_large(maps, n_clusters="auto", size=14, n_neighbors=10, batch=4096)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "tracemalloc_mb": peak / 2**20,
            "rss_growth_mb": (after - before) / 1024, "rss_peak_mb": after / 1024,
            "k": result.n_clusters, "clusters": result.clusters.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.threads)))
        return
    from sklearn.metrics import adjusted_rand_score

    truth = planted(max(args.sizes))
    env = dict(os.environ, **{name: str(args.threads) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n),
                              "--threads", str(args.threads)],
                             env=env, check=True, capture_output=True, text=True).stdout
        got = json.loads(out.strip().splitlines()[-1])
        rows.append({"N": f"{n:,}", "seconds": f"{got['seconds']:.1f}",
                     "tracemalloc peak MB": f"{got['tracemalloc_mb']:.0f}",
                     "RSS growth MB": f"{got['rss_growth_mb']:.0f}",
                     "RSS peak MB": f"{got['rss_peak_mb']:.0f}", "k": got["k"],
                     "ARI": f"{adjusted_rand_score(truth[:n], got['clusters']):.3f}",
                     "dense N×N would be MB": f"{n * n * 8 / 2**20:,.0f}"})
        print(rows[-1], flush=True)
    print(f"\nspray_large, {args.threads} thread(s), float16 memmap of {SIDE}×{SIDE} maps")
    print(table(rows, list(rows[0])))
    PATH.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
