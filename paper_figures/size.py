"""The size knob of the notebooks and of ``python -m paper_figures``: quick or full.

* ``quick``: the ``*_quick`` studies (seconds per notebook on two CPU cores), for CI and
  for trying things out. Chosen when ``SSBNN_QUICK`` is true, or when ``CI`` is set (to
  anything but an empty or false value) and ``SSBNN_QUICK`` is not set.
* ``full``: the full-size studies, for the paper.

``SSBNN_QUICK`` takes ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``/empty
(any case); ``SSBNN_QUICK=0`` forces the full size even under CI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from ssbnn_theory.errors import InvalidParameterError

__all__ = ["Size", "size_from_env"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class Size(StrEnum):
    """How big the studies behind the figures are."""

    QUICK = "quick"
    """The ``*_quick`` version of each study: tiny grids, few steps (CI)."""
    FULL = "full"
    """The full-size studies of the paper."""


def size_from_env(environ: Mapping[str, str] | None = None) -> Size:
    """The size chosen by the environment (``os.environ`` by default; see the module docstring).

    Raises
    ------
    InvalidParameterError
        ``SSBNN_QUICK`` holds something other than a true or false word.
    """
    env = os.environ if environ is None else environ
    if "SSBNN_QUICK" in env:
        value = env["SSBNN_QUICK"].strip().lower()
        if value in _TRUE:
            return Size.QUICK
        if value in _FALSE:
            return Size.FULL
        allowed = "one of " + ", ".join(repr(v) for v in (*_TRUE, *_FALSE))
        raise InvalidParameterError("SSBNN_QUICK", allowed, env["SSBNN_QUICK"])
    if env.get("CI", "").strip().lower() not in _FALSE:
        return Size.QUICK
    return Size.FULL
