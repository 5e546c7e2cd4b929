"""``dataset``: the user's data ``(X, y)`` from ``.npz``, ``.csv`` or ``.parquet``, split into
training replicates and a test set by seed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simulations.designs.base import (
    Design,
    Draws,
    check_finite,
    check_likelihood,
    load_npz,
    parameters,
    real_array,
    reason,
)
from simulations.enums import Likelihood
from simulations.rng import stream_seed
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer


def _names(field: str, value: object, what: str) -> list[str]:
    """A column or array name, or a non-empty list of them, as a list of strings."""
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(c, str) for c in names)
    ):
        raise InvalidParameterError(field, f"a {what} or a non-empty list of them", value)
    return list(names)


def _read_table(path: Path, features: object, target: object) -> tuple[object, object]:
    """``X`` and ``y`` from ``.npz`` (array names) or ``.csv`` / ``.parquet`` (column names)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        names = {"features": "X" if features is None else features, "target": target or "y"}
        arrays = load_npz("path", path)
        for field, key in names.items():
            if not isinstance(key, str) or key not in arrays:
                raise InvalidParameterError(
                    field, f"the name of an array in {path.name}: one of {sorted(arrays)}", key
                )
        return arrays[names["features"]], arrays[names["target"]]
    import pandas as pd

    kind = "CSV file with a header row" if suffix == ".csv" else "Parquet file"
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # empty, binary or damaged files are the user's input
        raise InvalidParameterError(
            "path", f"a readable {kind}", f"{path.name}: {reason(exc)}"
        ) from None
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise InvalidParameterError("target", f"a column name of {path.name}", None)
    targets = _names("target", target, "column name")
    chosen = (
        [c for c in columns if c not in targets]
        if features is None
        else _names("features", features, "column name")
    )
    for field, names in (("target", targets), ("features", chosen)):
        missing = [c for c in names if c not in columns]
        if missing or not names:
            raise InvalidParameterError(field, f"column names of {path.name}: {columns}", missing)
    if frame.empty:
        raise InvalidParameterError("path", f"a {kind} and data rows", f"{path.name}: no rows")
    frame.columns = columns
    out = []
    for field, names in (("features", list(chosen)), ("target", targets)):
        try:
            out.append(frame[names].to_numpy(dtype=np.float64))
        except (TypeError, ValueError):
            raise InvalidParameterError(field, "numeric columns", names) from None
    return out[0], out[1]


def _dataset_arrays(
    *,
    path: str | os.PathLike | None = None,
    x: object = None,
    y: object = None,
    features: object = None,
    target: object = None,
    likelihood: Likelihood | str = Likelihood.GAUSSIAN,
) -> tuple[np.ndarray, np.ndarray, Likelihood, int]:
    """The checked ``x [rows, p]`` and ``y [rows, 1 or outputs]`` of a ``dataset`` design, its
    likelihood and its network outputs. Its keyword parameters are the design's parameters."""
    if (path is None) == (x is None and y is None) or (path is None and (x is None or y is None)):
        raise InvalidParameterError(
            "path", "given (.npz, .csv or .parquet), or else both x and y given", path
        )
    if path is not None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidParameterError("path", "a file name", path)
        file = Path(path)
        if not file.is_file() or file.suffix.lower() not in (".npz", ".csv", ".parquet"):
            raise InvalidParameterError(
                "path", "an existing .npz, .csv or .parquet file", str(path)
            )
        x, y = _read_table(file, features, target)
    x = check_finite("x", real_array("x", x, booleans=True))
    y = check_finite("y", real_array("y", y, booleans=True))
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidParameterError("x", "a 2-D array [rows >= 2, features >= 1]", x.shape)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != x.shape[0] or y.shape[1] < 1:
        raise InvalidParameterError(
            "y", f"an array [{x.shape[0]}] or [{x.shape[0]}, outputs]", y.shape
        )
    likelihood = check_likelihood(likelihood, tuple(Likelihood))
    outputs = y.shape[1]
    if likelihood is not Likelihood.GAUSSIAN:
        if outputs != 1:
            raise InvalidParameterError("y", "one column of class labels", y.shape)
        labels = y[:, 0]
        if likelihood is Likelihood.BERNOULLI and not np.isin(labels, (0.0, 1.0)).all():
            raise InvalidParameterError(
                "y", "labels in {0, 1} for bernoulli", np.unique(labels)[:5]
            )
        if (labels < 0).any() or (labels != np.round(labels)).any() or labels.max() < 1:
            raise InvalidParameterError(
                "y", "integer class labels 0..K-1 with K >= 2", np.unique(labels)[:5]
            )
        outputs = 1 if likelihood is Likelihood.BERNOULLI else int(labels.max()) + 1
    return x, y, likelihood, outputs


def _dataset(params: dict[str, Any], *, n, replicates, seed, n_test, dtype) -> Draws:
    """User data split by the seed: test rows (stream ``"test"``), replicate rows (``"data"``)."""
    x, y, likelihood, outputs = _dataset_arrays(**params)
    rows = x.shape[0]
    n = check_integer("n", n, lower=1, upper=rows - 1)
    n_test = (
        rows - n if n_test is None else check_integer("n_test", n_test, lower=1, upper=rows - n)
    )
    order = np.random.default_rng(stream_seed(seed, "test")).permutation(rows)
    test, pool = order[:n_test], order[n_test:]
    chosen = np.stack(
        [
            np.random.default_rng(stream_seed(seed, "data", r)).choice(pool, size=n, replace=False)
            for r in range(replicates)
        ]
    )

    def responses(index: np.ndarray) -> torch.Tensor:
        values = torch.from_numpy(y[index])
        if likelihood is Likelihood.CATEGORICAL:
            return values[..., 0].to(torch.int64)
        return values.to(dtype)

    return Draws(
        likelihood=likelihood,
        outputs=outputs,
        x_train=torch.from_numpy(x[chosen]).to(dtype),
        y_train=responses(chosen),
        x_test=torch.from_numpy(x[test]).to(dtype),
        f_test=None,
        y_test=responses(test),
        noise_sd=None,
        truth=None,
    )


def _rows(params: Mapping[str, Any]) -> int:
    """The rows of the user's data (read and checked as ``generate`` does)."""
    return int(_dataset_arrays(**params)[0].shape[0])


DATASET = Design(
    "dataset",
    "1",
    "user data (X, y) from .npz, .csv or .parquet, split into train and test by seed",
    parameters(_dataset_arrays),
    {"replicates": 2},
    _dataset,
    rows=_rows,
)
