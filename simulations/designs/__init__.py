"""Named, versioned synthetic designs (``docs/designs.md``), explicit teachers and user data.

A design is a law of ``(X, Y)``: inputs ``x``, a noise-free regression function
or class-probability function ``f0(x)``, and an observation model (Gaussian
noise ``y = f0(x) + sigma_e e``, or Bernoulli / categorical draws with
probabilities ``f0(x)``). :func:`generate` draws ``R`` independent training
sets of size ``n`` and one shared test set of ``n_test`` points with its
noise-free ``f0`` values, and returns the truth (relevant inputs, active nodes
per hidden layer, weight bounds) where one is known.

Randomness (``simulations.rng``). With run seed ``s``:

* the truth (e.g. the random weights of ``relu_teacher``) comes from stream
  ``"truth"`` of ``s``;
* replicate ``r``'s training data from stream ``"data"``, key ``r``;
* the shared test set from stream ``"test"``.

So replicate ``r``'s data do not depend on how many replicates are drawn. All
draws are made in float64 with :class:`numpy.random.Generator` (PCG64) and cast
to ``dtype`` at the end, so a float32 and a float64 run see the same data up to
rounding. ``docs/designs.md`` documents each design and its version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from simulations.designs import literature, teachers, user_data
from simulations.designs.base import DEFAULT_N_TEST, Design, SimulationData, Truth
from simulations.designs.teachers import node_effects, teacher_forward
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer

__all__ = [
    "DEFAULT_N_TEST",
    "DESIGNS",
    "Design",
    "SimulationData",
    "Truth",
    "available_rows",
    "generate",
    "get_design",
    "node_effects",
    "teacher_forward",
]

# --------------------------------------------------------------------------- registry

DESIGNS: Mapping[str, Design] = MappingProxyType(
    {
        d.name: d
        for d in (
            teachers.RELU_TEACHER,
            literature.BAI_SPARSE_FUNCTION,
            literature.SUN_REGRESSION,
            literature.SUN_CLASSIFICATION,
            literature.CUBIC_SMALL_N,
            teachers.TEACHER,
            user_data.DATASET,
        )
    }
)
"""The registry: design name -> :class:`Design`."""


def _check_known(spec: Design, params: Mapping[str, Any]) -> None:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise InvalidParameterError(
            unknown[0],
            f"a parameter of {spec.name}: one of {sorted(spec.defaults)}",
            params[unknown[0]],
        )


def get_design(design: str | Design) -> Design:
    """The registered :class:`Design` of that name (or the design itself)."""
    if isinstance(design, Design):
        return design
    if not isinstance(design, str) or design not in DESIGNS:
        raise InvalidParameterError("design", "one of " + ", ".join(map(repr, DESIGNS)), design)
    return DESIGNS[design]


def available_rows(design: str | Design, **params: Any) -> int | None:
    """The rows a design's data hold, training and test sets together, or ``None`` (any size).

    ``dataset`` reads and checks its data (as :func:`generate` does) and returns their row
    count, so that a study can check every ``n`` (and ``n_test``) before it runs; the
    synthetic designs draw any size.

    Raises
    ------
    InvalidParameterError
        Unknown design or parameter, or data that :func:`generate` would refuse.
    """
    spec = get_design(design)
    if spec.rows is None:
        return None
    _check_known(spec, params)
    return spec.rows({**spec.defaults, **params})


def generate(
    design: str | Design,
    *,
    n: int,
    replicates: int,
    seed: int,
    n_test: int | None = None,
    dtype: torch.dtype = torch.float32,
    **params: Any,
) -> SimulationData:
    """Draw ``replicates`` training sets of size ``n``, a shared test set, and the truth.

    Parameters
    ----------
    design
        A name of :data:`DESIGNS` (``relu_teacher``, ``bai_sparse_function``,
        ``sun_regression``, ``sun_classification``, ``cubic_small_n``,
        ``teacher``, ``dataset``) or a :class:`Design`.
    n
        Training points per replicate (``>= 1``).
    replicates
        Number of independent training sets ``R`` (``>= 1``).
    seed
        Run seed (an integer ``>= 0``); see the module docstring for the streams.
    n_test
        Test points; default 10,000 for the synthetic designs and, for
        ``dataset``, every row not held for training.
    dtype
        Floating dtype of the returned inputs and responses (float32 default).
    **params
        Design parameters; see :attr:`Design.defaults` and ``docs/designs.md``.

    Returns
    -------
    SimulationData

    Raises
    ------
    InvalidParameterError
        Unknown design or parameter, or a parameter outside its range.
    """
    spec = get_design(design)
    _check_known(spec, params)
    n = check_integer("n", n, lower=1)
    replicates = check_integer("replicates", replicates, lower=1)
    seed = check_integer("seed", seed, lower=0)
    if n_test is not None:
        n_test = check_integer("n_test", n_test, lower=1)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InvalidParameterError(
            "dtype", "a floating torch dtype (torch.float32, torch.float64)", dtype
        )
    resolved = {**spec.defaults, **params}
    draws = spec.generator(
        resolved, n=n, replicates=replicates, seed=seed, n_test=n_test, dtype=dtype
    )
    return SimulationData(
        design=spec.name,
        version=spec.version,
        params=MappingProxyType(resolved),
        seed=seed,
        **{f.name: getattr(draws, f.name) for f in dataclasses.fields(draws)},
    )
