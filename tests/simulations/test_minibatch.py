"""Minibatches: the sampling scheme, equal layouts, replicate independence, resume."""

import pytest
import torch

from simulations.minibatch import Minibatches
from simulations.rng import stream_seed
from ssbnn_theory.errors import InvalidParameterError

R, N, P = 3, 23, 4


def data(reps=R, n=N, categorical=False):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(reps, n, P, generator=gen, dtype=torch.float64)
    # Row i of replicate r is tagged in column 0 so that a batch names its rows.
    x[..., 0] = torch.arange(reps * n, dtype=torch.float64).view(reps, n)
    if categorical:
        y = torch.randint(0, 3, (reps, n), generator=gen)
    else:
        y = torch.randn(reps, n, 1, generator=gen, dtype=torch.float64)
    return x, y


def reference_rows(seed, n, batch, steps, shuffle="epoch"):
    """Rows of each step by the documented scheme: a fresh randperm per epoch (only the first
    with ``shuffle="once"``), floor(n/B) consecutive minibatches of it."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "minibatch"))
    per_epoch, rows = n // batch, []
    for step in range(steps):
        k = step % per_epoch
        if step == 0 or (k == 0 and shuffle == "epoch"):
            perm = torch.randperm(n, generator=gen)
        rows.append(perm[k * batch : (k + 1) * batch])
    return rows


SCHEMES = [("epoch", "epoch"), ("gather", "epoch"), ("epoch", "once"), ("gather", "once")]


@pytest.mark.parametrize(("layout", "shuffle"), SCHEMES)
@pytest.mark.parametrize("categorical", [False, True])
def test_minibatches_follow_the_documented_scheme(layout, shuffle, categorical):
    x, y = data(categorical=categorical)
    seeds, batch, steps = [7, 8, 9], 5, 13  # 4 minibatches per epoch, 3 rows left out
    batches = Minibatches(x, y, batch, seeds, layout=layout, shuffle=shuffle)
    expected = [reference_rows(s, N, batch, steps, shuffle) for s in seeds]
    for step in range(steps):
        xb, yb = batches.gather(step)
        assert xb.shape == (R, batch, P) and yb.shape[:2] == (R, batch)
        for r in range(R):
            rows = expected[r][step]
            assert torch.equal(xb[r], x[r, rows]), (layout, step, r)
            assert torch.equal(yb[r], y[r, rows]), (layout, step, r)


def test_an_epoch_uses_distinct_rows():
    x, y = data()
    batches = Minibatches(x, y, 5, [1, 2, 3])
    seen = torch.cat([batches.gather(step)[0][..., 0].clone() for step in range(4)], dim=1)
    for r in range(R):
        assert seen[r].unique().numel() == 20  # floor(23 / 5) * 5 rows, none twice


@pytest.mark.parametrize("shuffle", ["epoch", "once"])
def test_a_replicate_does_not_depend_on_the_others(shuffle):
    x, y = data()
    batched = Minibatches(x, y, 6, [4, 5, 6], layout="epoch", shuffle=shuffle)
    single = Minibatches(x[1:2], y[1:2], 6, [5], layout="gather", shuffle=shuffle)
    for step in range(9):
        xb, _ = batched.gather(step)
        xs, _ = single.gather(step)
        assert torch.equal(xb[1], xs[0])


@pytest.mark.parametrize(("layout", "shuffle"), SCHEMES)
def test_replicates_at_their_own_steps_and_restarted_on_their_own(layout, shuffle):
    """Steps given per replicate (the rounds of an "auto" fit): each replicate gets the
    minibatch of its own step, as a run of its own would; a restarted replicate takes its
    new generator and a fresh permutation at its next step, the others go on; a replicate
    asked for the same step again gets the same rows."""
    x, y = data()
    seeds, batch = [7, 8, 9], 5
    batches = Minibatches(x, y, batch, seeds, layout=layout, shuffle=shuffle)
    expected = [reference_rows(s, N, batch, 12, shuffle) for s in seeds]
    for t in range(9):
        # replicate 1 stays at step 4 (an epoch's first) from t = 4, replicate 2 runs ahead
        steps = torch.tensor([t, min(t, 4), t + 2])
        xb, _ = batches.gather(steps)
        for r in range(R):
            assert torch.equal(xb[r], x[r, expected[r][int(steps[r])]]), (layout, t, r)
    restarted = Minibatches(x, y, batch, seeds, layout=layout, shuffle=shuffle)
    for step in range(3):
        restarted.gather(step)
    fresh = torch.tensor([False, True, False])
    restarted.restart(fresh, [torch.Generator().manual_seed(stream_seed(42, "minibatch"))])
    again = reference_rows(42, N, batch, 2, shuffle)
    for t in range(2):
        steps = torch.tensor([3 + t, t, 3 + t])
        xb, _ = restarted.gather(steps)
        assert torch.equal(xb[1], x[1, again[t]]), (layout, t)
        for r in (0, 2):
            assert torch.equal(xb[r], x[r, expected[r][3 + t]]), (layout, t, r)


def test_the_epoch_layout_hands_out_views():
    x, y = data()
    batches = Minibatches(x, y, 5, [1, 2, 3], layout="epoch")
    first, _ = batches.gather(0)
    second, _ = batches.gather(1)
    assert first._base is batches.x_buffer and second._base is batches.x_buffer
    assert second.data_ptr() - first.data_ptr() == 5 * P * x.element_size()


def test_shuffling_once_copies_the_data_once():
    """``shuffle="once"`` writes its buffer at the first step and then only hands out views
    of it: the buffer holds the same values after two epochs, and epoch 3's minibatches
    are epoch 1's."""
    x, y = data()
    batches = Minibatches(x, y, 5, [1, 2, 3], shuffle="once")
    first = batches.gather(0)[0].clone()
    snapshot = batches.x_buffer.clone()
    for step in range(1, 8):
        view, _ = batches.gather(step)
        assert view._base is batches.x_buffer
    assert torch.equal(batches.x_buffer, snapshot)
    assert torch.equal(batches.gather(8)[0], first)


@pytest.mark.parametrize(("layout", "shuffle"), SCHEMES)
def test_a_restored_state_continues_the_epoch(layout, shuffle):
    """A fresh instance given the generators' states and the current permutation (what a
    checkpoint holds) continues mid-epoch with the same minibatches."""
    x, y = data()
    seeds = [1, 2, 3]
    run = Minibatches(x, y, 5, seeds, layout=layout, shuffle=shuffle)
    for step in range(6):
        run.gather(step)
    states, perm = [g.get_state() for g in run.generators], run.perm.clone()
    resumed = Minibatches(x, y, 5, seeds, layout=layout, shuffle=shuffle)
    for g, s in zip(resumed.generators, states, strict=True):
        g.set_state(s)
    resumed.perm = perm
    for step in range(6, 15):
        a, b = run.gather(step), resumed.gather(step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), step


def test_full_batch_returns_the_data():
    x, y = data()
    batches = Minibatches(x, y, N, [1, 2, 3])
    xb, yb = batches.gather(5)
    assert xb is x and yb is y and batches.indices(5) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch": 0}, "batch_size"),
        ({"batch": N + 1}, "batch_size"),
        ({"seeds": [1, 2]}, "seeds"),
        ({"layout": "rows"}, "layout"),
        ({"shuffle": "never"}, "shuffle"),
    ],
)
def test_bad_options_name_the_field(kwargs, field):
    x, y = data()
    args = {"batch": 5, "seeds": [1, 2, 3]} | kwargs
    with pytest.raises(InvalidParameterError, match=field):
        Minibatches(x, y, args.pop("batch"), args.pop("seeds"), **args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("layout", ["epoch", "gather"])
def test_minibatches_on_cuda(layout):
    """On the GPU (its own generators): both layouts give the same minibatches, and each
    is a set of distinct rows of the replicate's data."""
    x, y = data()
    x, y = x.cuda(), y.cuda()
    a = Minibatches(x, y, 5, [1, 2, 3], layout=layout)
    b = Minibatches(x, y, 5, [1, 2, 3], layout="gather")
    for step in range(9):
        xa, ya = a.gather(step)
        xb, yb = b.gather(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.device.type == "cuda" and xa[..., 0].unique().numel() == R * 5
