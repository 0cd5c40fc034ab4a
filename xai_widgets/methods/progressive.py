"""Progressive results: the order in which slow methods do their work so that every round
ends with a usable map, and the last round is exactly the one-shot result.

A method never computes anything twice: it does the passes of its one-shot computation in
an order where each prefix is a fair estimate, and shows the estimate after each round.

- Quadrature nodes (integrated gradients): every 8th node first, then every 4th, every 2nd,
  all; an interim map re-weights the nodes done so far to the full path.
- Random samples (SmoothGrad, GradientSHAP, LIME, KernelSHAP): all draws are made up front
  (the same draws as the one-shot call); a round averages or fits the first k of them.
- Windows (occlusion): every 4th window position in each direction, then every 2nd, then
  all; interim windows are widened to cover the gaps (a coarse map, refined in place).

>>> sample_rounds(64)
[8, 16, 32, 64]
>>> [len(nodes) for nodes in node_rounds(64)]
[8, 8, 16, 32]
>>> sample_rounds(6)
[6]
"""

from __future__ import annotations

ROUNDS = 4  # 1/8, 1/4, 1/2, all of the work


def sample_rounds(n: int, rounds: int = ROUNDS, least: int = 4) -> list[int]:
    """The prefix lengths after which a round ends: n/8, n/4, n/2, n (halving down from n,
    none below ``least``); just [n] when n is small."""
    ends = [n]
    while len(ends) < rounds and ends[-1] // 2 >= least:
        ends.append(ends[-1] // 2)
    return ends[::-1]


def node_rounds(n: int, rounds: int = ROUNDS, least: int = 4) -> list[list[int]]:
    """Node indices 0..n−1 in rounds: every 2^(rounds−1)-th node first, then the nodes
    halfway between, until every node is done (each round's nodes are new)."""
    stride = 1
    while stride < 2 ** (rounds - 1) and n // (2 * stride) >= least:
        stride *= 2
    done: set[int] = set()
    out = []
    while stride >= 1:
        nodes = [i for i in range(0, n, stride) if i not in done]
        done.update(nodes)
        out.append(nodes)
        stride //= 2
    return out


def grid_rounds(rows: int, cols: int) -> list[tuple[int, list[int]]]:
    """(step, flat window indices) rounds over a rows × cols grid (row-major): every 4th
    position in each direction, every 2nd, all (fewer rounds on small grids: a step of s
    needs 4·s positions a side); each index once."""
    levels = [s for s in (4, 2) if min(rows, cols) >= 4 * s] + [1]
    done: set[int] = set()
    out = []
    for step in levels:
        chosen = [r * cols + c for r in range(0, rows, step) for c in range(0, cols, step)
                  if r * cols + c not in done]
        done.update(chosen)
        out.append((step, chosen))
    return out
