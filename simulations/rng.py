"""Seeds: one named, independent stream per (run seed, purpose, replicate).

Replicate ``r`` of a batched run draws everything (data, initial values,
minibatches, Monte Carlo noise) from its own seeds, so a batched run over
replicates ``0..R-1`` equals ``R`` separate runs given the same per-replicate
seeds (``tests/simulations/test_train.py`` checks it).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["replicate_seeds", "stream_seed"]


def stream_seed(seed: int, stream: str, *key: int) -> int:
    """A 63-bit seed from ``(seed, stream, *key)``; distinct inputs give independent streams.

    Uses :class:`numpy.random.SeedSequence`, whose outputs for distinct entropy
    tuples are statistically independent.
    """
    entropy = [int(seed), zlib.crc32(stream.encode()), *map(int, key)]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def replicate_seeds(seed: int, replicates: int, stream: str) -> tuple[int, ...]:
    """Seeds of replicates ``0..replicates-1`` for ``stream`` of a run seeded with ``seed``."""
    return tuple(stream_seed(seed, stream, r) for r in range(replicates))
