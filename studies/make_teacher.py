"""Write ``studies/teacher.npz``: the explicit teacher network of ``studies/teacher*.toml``.

A tanh network on 6 inputs with hidden widths (6, 4), of which (4, 3) nodes are
active (the last node of each hidden layer has a zero incoming group), and one
output. Weights are ``+-U[0.5, 1.5]``, biases ``U(-0.5, 0.5)``, drawn from
``numpy.random.default_rng(20240607)``; inactive groups and the outgoing weights
of inactive nodes are zero. The design ``teacher`` reads the arrays ``W1, b1,
W2, b2, W3, b3`` and treats inputs beyond the sixth as nuisance.

Run ``python studies/make_teacher.py`` to regenerate the file (the arrays, not
the zip container's timestamps, are reproducible; ``tests/test_studies.py``
checks that the committed file holds exactly these arrays).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 20240607
INPUTS = 6
HIDDEN = (6, 4)
ACTIVE = (4, 3)


def teacher_arrays() -> dict[str, np.ndarray]:
    """The teacher's layers ``W1, b1, ..., W3, b3`` (float64)."""
    rng = np.random.default_rng(SEED)
    sizes = (INPUTS, *HIDDEN, 1)
    active = (INPUTS, *ACTIVE, 1)
    arrays: dict[str, np.ndarray] = {}
    for layer in range(1, len(sizes)):
        fan_in, fan_out = sizes[layer - 1], sizes[layer]
        w = rng.choice([-1.0, 1.0], size=(fan_out, fan_in)) * rng.uniform(
            0.5, 1.5, (fan_out, fan_in)
        )
        b = rng.uniform(-0.5, 0.5, size=fan_out)
        w[active[layer] :, :] = 0.0  # inactive nodes of this layer: zero incoming group
        b[active[layer] :] = 0.0
        w[:, active[layer - 1] :] = 0.0  # and nothing from the previous layer's inactive nodes
        arrays[f"W{layer}"], arrays[f"b{layer}"] = w, b
    return arrays


def main(path: Path) -> None:
    """Write the teacher to ``path``."""
    np.savez(path, **teacher_arrays())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("teacher.npz"))
