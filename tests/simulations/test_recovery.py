"""Node recovery on relu_teacher: SS-GL and SS-GHS prune an 8-8 student towards (4, 3).

Setting (quick): ``relu_teacher`` with p = 20 inputs (5 relevant), true active nodes
(4, 3), noise sd 0.5, n = 16384 per replicate, R = 4 replicates; an 8-8 ReLU student
with the reference defaults (inclusion prior of the reference scripts, initial
inclusion probability 0.99, temperature 0.5, straight-through samples, regularised
horseshoe with c = 1); Adam at lr 3e-2 for 3000 steps of 2048 observations.

Criterion, per prior: for each hidden layer, the kept node count averaged over the
replicates of ``|kept - true|`` is at most ``TOLERANCE`` = 2 nodes, and no replicate
keeps more than 12 of the student's 16 nodes.

Why not "the exact count in most replicates": at these sizes the straight-through
pruning of SS-GL and SS-GHS does not stop exactly at the teacher's structure. With
this setting over design seeds 1-7 (28 replicates per prior and layer) we measured a
mean absolute error per layer between 0.25 and 1.75 nodes, kept structures from
(1, 2) to (5, 6), and at most 10 of 16 nodes kept; exact (4, 3) in 4 of 56
replicate fits. The teacher's structure is a stable point of the objective (a
student started at the teacher keeps (4, 3) in every replicate), but from the 0.99
start the path to it over- or under-prunes by a node or two. The test's design seed
(1) gives errors (1.0, 0.75) for SS-GL and (0.75, 0.25) for SS-GHS, a margin of at
least one node to the threshold. A broken engine fails by far: with the KL weight
below 1e-4 (``test_recovery_needs_the_kl``) the replicates keep 14 to 16 of 16
nodes, errors near 4 per layer; a dense student keeps all 16 by construction.
"""

import numpy as np
import pytest

from simulations import BayesianMLP, ModelConfig, TrainConfig, fit, generate

TOLERANCE = 2.0
MAX_KEPT = 12  # of the student's 16 hidden nodes
R, N, SIGMA, WIDTH = 4, 16_384, 0.5, 8


@pytest.fixture(scope="module")
def data():
    return generate("relu_teacher", n=N, replicates=R, seed=1, n_test=100, p=20, sigma_e=SIGMA)


def kept_counts(prior, data, steps=3000, **train):
    """Kept nodes ``[R, L]`` after training an 8-8 student with ``prior``."""
    config = ModelConfig(p=data.p, hidden=(WIDTH, WIDTH), prior=prior, sigma_e=SIGMA)
    model = BayesianMLP(config, [100 + r for r in range(R)], n=data.n)
    options = TrainConfig(steps=steps, batch_size=2048, lr=3e-2, **train)
    fit(model, data.x_train, data.y_train, options)
    return np.stack([k.sum(1).numpy() for k in model.kept().nodes], axis=1)


def recovered(counts, truth) -> bool:
    """The criterion of the module docstring."""
    error = np.abs(counts - np.asarray(truth)).mean(axis=0)
    return bool((error <= TOLERANCE).all() and (counts.sum(axis=1) <= MAX_KEPT).all())


@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs"])
def test_node_priors_recover_the_teacher_structure(prior, data):
    counts = kept_counts(prior, data)
    assert recovered(counts, data.truth.active_nodes), counts


def test_recovery_needs_the_kl(data):
    """Negative control: KL weight ``(t + 1) / 1e7`` <= 5e-5 over 500 steps keeps almost
    every node, and the criterion rejects it."""
    counts = kept_counts("ss-ghs", data, steps=500, kl_warmup_steps=10_000_000)
    assert (counts.sum(axis=1) >= 14).all(), counts
    assert not recovered(counts, data.truth.active_nodes)
