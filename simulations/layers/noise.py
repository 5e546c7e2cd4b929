"""Noise protocol of the layers: one generator per replicate, normals then uniforms.

A layer consumes ``normal_count`` standard normals and ``uniform_count`` uniforms per
replicate per draw. Callers pass them as ``[..., R, count]`` tensors (:func:`draw_noise`), so
one generator call per replicate serves a whole network, and replicate ``r``'s values do not
depend on the other replicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["draw_noise", "replicate_generators"]


def replicate_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list:
    """One ``torch.Generator`` per replicate on ``device``, seeded with ``seeds[r]``."""
    gens = []
    for seed in seeds:
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed))
        gens.append(gen)
    return gens


def draw_noise(
    generators: Sequence[torch.Generator],
    normal_count: int,
    uniform_count: int,
    *,
    draws: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normals ``[R, normal_count]`` and uniforms ``[R, uniform_count]``.

    Replicate ``r``'s values come from ``generators[r]`` alone, normals first, so
    they do not depend on the other replicates. With ``draws`` the shapes are
    ``[draws, R, count]``, drawn draw by draw.
    """
    lead = () if draws is None else (draws,)
    reps = len(generators)
    normal = torch.empty((*lead, reps, normal_count), dtype=dtype, device=device)
    uniform = torch.empty((*lead, reps, uniform_count), dtype=dtype, device=device)
    # Row i of the flat [draws * R, count] views is draw i // R of replicate i % R: the rows
    # as views from one unbind (a Python index per row costs as much as a small draw).
    rows = (draws or 1) * reps
    normals = normal.view(rows, normal_count).unbind(0) if normal_count else (None,) * rows
    uniforms = uniform.view(rows, uniform_count).unbind(0) if uniform_count else (None,) * rows
    for i, (row_normal, row_uniform) in enumerate(zip(normals, uniforms, strict=True)):
        gen = generators[i % reps]
        if row_normal is not None:
            row_normal.normal_(generator=gen)
        if row_uniform is not None:
            row_uniform.uniform_(generator=gen)
    return normal, uniform
