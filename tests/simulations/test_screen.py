"""Screening the inputs (``TrainConfig.screen_inputs``): the hand-over from the model with an
input spike to the model asked for, the checks, and the batched-equals-separate guarantee."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from simulations.model import BayesianMLP, ModelConfig
from simulations.screen import screening_model, take_screened
from simulations.structure import ElboEstimate
from simulations.train import TrainConfig, checkpoint_files, fit
from ssbnn_theory.errors import InvalidParameterError
from tests.simulations.test_train import AUTO, D, P, assert_each_replicate_is_its_own_run, data

CFG = ModelConfig(p=P, hidden=(8, 6), prior="ss-gl", activation="relu", prior_inclusion=0.2)
SCREENED = replace(AUTO, screen_inputs=True)
BOTH = replace(AUTO, screen_inputs="both")


def test_the_screening_model_starts_from_the_models_values():
    model = BayesianMLP(CFG, [3, 4], dtype=D)
    screen = screening_model(model)
    assert model.input_spike is None and screen.input_spike is not None
    assert screen.replicate_seeds == model.replicate_seeds
    theirs = dict(screen.named_parameters())
    for name, value in model.named_parameters():
        torch.testing.assert_close(theirs[name], value, rtol=0, atol=0)


def test_the_model_takes_the_screened_values_with_the_dropped_inputs_reset():
    """Every parameter comes over as fitted, but the first layer's weight means and ``rho``
    on the inputs the spike dropped (per replicate), which start again at 0 and the first
    layer's ``rho_init``; the hidden masks come over, the input spike's does not."""
    config = replace(CFG, rho_init=(-4.0, -6.0, -6.0))
    model = BayesianMLP(config, [3, 4], dtype=D)
    screen = screening_model(BayesianMLP(config, [8, 9], dtype=D))
    screen.freeze_masks()
    inputs = screen.input_spike.indicators
    inputs.frozen_mask = torch.ones(2, P, dtype=D)
    inputs.frozen_mask[0, [1, 3]] = 0.0
    inputs.frozen_mask[1, 2] = 0.0
    screen.layers[1].indicators.frozen_mask[1, [0, 5]] = 0.0
    with torch.no_grad():
        screen.layers[0].rho.fill_(-2.0)
    take_screened(screen, model)
    mine, theirs = dict(model.named_parameters()), dict(screen.named_parameters())
    for name, value in mine.items():
        if name not in ("layers.0.mu", "layers.0.rho"):
            torch.testing.assert_close(value, theirs[name], rtol=0, atol=0)
    dropped = torch.zeros(2, 8, P + 1, dtype=torch.bool)
    dropped[0, :, [1, 3]] = True
    dropped[1, :, 2] = True
    first = model.layers[0]
    assert (first.mu[dropped] == 0).all() and (first.rho[dropped] == -4.0).all()
    assert torch.equal(first.mu[~dropped], screen.layers[0].mu[~dropped])
    assert (first.rho[~dropped] == -2.0).all()
    for layer, source in zip(model.hidden_layers, screen.hidden_layers, strict=True):
        assert torch.equal(layer.indicators.frozen_mask, source.indicators.frozen_mask)
    assert model.kept().nodes[1].sum(1).tolist() == [6, 4]


@pytest.mark.parametrize(
    ("train", "model_config"),
    [
        ({"steps": 10, "screen_inputs": True}, CFG),
        ({"steps": 10, "screen_inputs": "both"}, CFG),
        ({"screen_inputs": "yes"}, CFG),
        ({"screen_inputs": True}, replace(CFG, input_spike=True)),
        ({"screen_inputs": "both"}, replace(CFG, input_spike=True)),
    ],
    ids=[
        "fixed steps",
        "both with fixed steps",
        "not a boolean",
        "a model with an input spike",
        "both with an input spike",
    ],
)
def test_screening_needs_an_auto_run_of_a_model_without_an_input_spike(train, model_config):
    x, y = data(1)
    with pytest.raises(InvalidParameterError) as info:
        fit(BayesianMLP(model_config, [1], dtype=D), x, y, TrainConfig(**train))
    assert info.value.field == "screen_inputs"


def test_a_screened_fit_is_the_model_asked_for_and_its_replicates_are_their_own_runs():
    """A screened batch of three ends as three screened R = 1 runs (float64, the tolerance of
    the other batched-equals-separate tests); its report describes the model itself (its
    final L(q) is the model's fixed-noise estimate, its last structure event the model's
    structure), after the screening's events, which come first and are marked."""
    x, y = data(3, seed=2, n=120)
    seeds = [5, 22, 33]
    model = BayesianMLP(CFG, seeds, dtype=D)
    report = fit(model, x, y, SCREENED)
    assert model.input_spike is None and model.masks_frozen
    rule = SCREENED.convergence
    estimate = ElboEstimate(model, x, y, rows=rule.rows, draws=rule.draws)()
    np.testing.assert_allclose(report.final_neg_elbo, estimate.numpy(), rtol=1e-12)
    screen = screening_model(BayesianMLP(CFG, seeds, dtype=D))
    screening = fit(screen, x, y, AUTO)  # the first stage alone
    assert (~screen.input_spike.kept()).any(1).all()  # it dropped inputs in every replicate
    marked = [e for e in report.structure_events if e.get("screened")]
    assert [{k: v for k, v in e.items() if k != "screened"} for e in marked] == list(
        screening.structure_events
    )
    kept = torch.stack([k.sum(-1) for k in model.kept().nodes], dim=1).tolist()
    for r in range(3):
        mine = [e for e in report.structure_events if e["replicate"] == r]
        marks = [e.get("screened", False) for e in mine]
        assert marks == sorted(marks, reverse=True), marks  # the screening's events first
        steps = [e["step"] for e in mine]
        assert steps == sorted(steps) and max(steps) <= report.steps_taken[r]
        assert report.steps_taken[r] > screening.steps_taken[r]
        assert not marks[-1] and mine[-1]["kept"] == kept[r]  # the model's own last move
    assert_each_replicate_is_its_own_run(model, report, x, y, SCREENED)


def test_screened_runs_resume_their_finished_screening(tmp_path):
    """A screened fit checkpoints its screening: run again on the same checkpoint it resumes
    the finished screening and ends where the first run ended."""
    x, y = data(2, seed=4, n=80)
    path = tmp_path / "fit.pt"
    first = BayesianMLP(CFG, [1, 2], dtype=D)
    report = fit(first, x, y, SCREENED, checkpoint=path)
    assert path.exists()
    again = BayesianMLP(CFG, [1, 2], dtype=D)
    resumed = fit(again, x, y, SCREENED, checkpoint=path)
    assert resumed.resumed_from > 0
    assert resumed.steps_taken.tolist() == report.steps_taken.tolist()
    for name, value in first.named_parameters():
        torch.testing.assert_close(dict(again.named_parameters())[name], value, rtol=0, atol=0)


def test_screening_is_off_by_default_and_left_out_of_the_checkpoint_record():
    assert TrainConfig().screen_inputs is False
    assert "screen_inputs" not in TrainConfig().record()
    assert TrainConfig(screen_inputs=True).record()["screen_inputs"] is True
    assert TrainConfig(screen_inputs=" Both").record()["screen_inputs"] == "both"


def test_both_keeps_per_replicate_the_fit_with_the_lower_elbo():
    """With ``"both"`` each replicate ends as the plain fit or the screened fit of the same
    start, to the bit: the one with the lower ``L(q)``; the report's per-replicate fields are
    the kept fit's, its steps and loss history the two fits' one after the other. (No
    removal search here, so that the fits compared are the ones chosen from; these seeds
    keep each kind of fit in some replicate.)"""
    x, y = (v[:4] for v in data(6, seed=3, n=120))
    seeds = [5, 22, 33, 41]
    fits = {}
    for value in (False, True, "both"):
        model = BayesianMLP(CFG, seeds, dtype=D)
        fits[value] = model, fit(model, x, y, replace(AUTO, search=False, screen_inputs=value))
    (plain, plain_report), (screened, screened_report) = fits[False], fits[True]
    model, report = fits["both"]
    better = screened_report.final_neg_elbo < plain_report.final_neg_elbo
    assert 0 < better.sum() < len(seeds)
    assert report.screened.tolist() == better.tolist()
    assert plain_report.screened is None and screened_report.screened.all()
    for r, pick in enumerate(better):
        kept, kept_report = (screened, screened_report) if pick else (plain, plain_report)
        for mine, theirs in zip(model.parameters(), kept.parameters(), strict=True):
            torch.testing.assert_close(mine[r], theirs[r], rtol=0, atol=0)
        for mine, theirs in zip(model.kept().nodes, kept.kept().nodes, strict=True):
            assert torch.equal(mine[r], theirs[r])
        for name in ("final_neg_elbo", "steps_taken", "converged", "indicator_switches"):
            assert getattr(report, name)[r] == getattr(kept_report, name)[r], name
        assert report.status[r] == kept_report.status[r]
        mine = [e for e in report.structure_events if e["replicate"] == r]
        assert mine == [e for e in kept_report.structure_events if e["replicate"] == r]
    assert report.steps == plain_report.steps + screened_report.steps
    assert report.loss_history.shape[0] == (
        plain_report.loss_history.shape[0] + screened_report.loss_history.shape[0]
    )
    assert (np.diff(report.logged_steps) > 0).all()


def test_both_fits_replicates_as_their_own_runs_and_resumes_its_checkpoints(tmp_path):
    """A batch of "both" ends as its R = 1 runs; it checkpoints the plain fit at the path and
    the screened one beside it, and run again on them it ends where the first run ended."""
    x, y = data(2, seed=4, n=80)
    path = tmp_path / "fit.pt"
    first = BayesianMLP(CFG, [1, 2], dtype=D)
    report = fit(first, x, y, BOTH, checkpoint=path)
    assert all(p.exists() for p in checkpoint_files(path))
    assert_each_replicate_is_its_own_run(first, report, x, y, BOTH)
    again = BayesianMLP(CFG, [1, 2], dtype=D)
    resumed = fit(again, x, y, BOTH, checkpoint=path)
    assert resumed.resumed_from > 0
    assert resumed.steps_taken.tolist() == report.steps_taken.tolist()
    assert resumed.screened.tolist() == report.screened.tolist()
    for name, value in first.named_parameters():
        torch.testing.assert_close(dict(again.named_parameters())[name], value, rtol=0, atol=0)
