"""Objectives: soft labels (closed form), soft-argmax, regression shapes and standardisation."""

from __future__ import annotations

import math

import pytest
import torch

from src.lit_modules.objectives import RegressionObjective, SoftBinObjective


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_soft_labels_sum_to_one_and_match_closed_form() -> None:
    obj = SoftBinObjective(n_bins=18, sd=0.5, shift=0.5)
    y = torch.tensor([[0.0], [3.2], [11.0], [16.7], [17.0]])
    labels = obj.soft_labels(y)
    assert labels.shape == (5, 1, 18)
    torch.testing.assert_close(labels.sum(-1), torch.ones(5, 1))
    for row, value in enumerate(y[:, 0].tolist()):
        mu = value + 0.5
        for k in range(18):
            lo = -math.inf if k == 0 else k
            hi = math.inf if k == 17 else k + 1
            expected = normal_cdf((hi - mu) / 0.5) - normal_cdf((lo - mu) / 0.5)
            assert labels[row, 0, k].item() == pytest.approx(expected, abs=1e-6)


def test_soft_argmax_recovers_the_target_from_perfect_logits() -> None:
    obj = SoftBinObjective()
    y = torch.tensor([[4.0], [9.5], [12.25]])
    logits = obj.soft_labels(y).clamp_min(1e-12).log()
    pred = obj.predict(logits)
    torch.testing.assert_close(pred, y, atol=0.02, rtol=0)
    # KL of the labels against themselves is zero
    assert obj.loss(logits, y).item() == pytest.approx(0.0, abs=1e-5)


def test_regression_loss_compares_equal_shapes() -> None:
    obj = RegressionObjective("mse")
    head = torch.tensor([[[1.0]], [[2.0]], [[3.0]]])
    y = torch.tensor([[1.0], [2.0], [5.0]])
    # the reference broadcast (B,) against (B, 1) into a (B, B) matrix; ours is the true MSE
    assert obj.loss(head, y).item() == pytest.approx(4.0 / 3.0)
    torch.testing.assert_close(obj.predict(head), torch.tensor([[1.0], [2.0], [3.0]]))


def test_standardised_huber_maps_predictions_back() -> None:
    obj = RegressionObjective("huber", standardize=True)
    y_train = torch.tensor([[10.0], [12.0], [14.0]])
    obj.fit(y_train)
    assert obj.mean.item() == pytest.approx(12.0)
    assert obj.std.item() == pytest.approx(2.0)
    head = ((y_train - 12.0) / 2.0).unsqueeze(-1)
    assert obj.loss(head, y_train).item() == pytest.approx(0.0)
    torch.testing.assert_close(obj.predict(head), y_train)
    # the statistics are buffers: they travel in the checkpoint
    assert {"mean", "std"} <= set(obj.state_dict())


def test_unknown_regression_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="final.objective.loss"):
        RegressionObjective("hinge")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_knots": [[0, 0]]},
        {"target_knots": [[0, 0], [0, 1]]},
        {"target_knots": [[0, 1], [5, 0]]},
        {"target_knots": [[0, 0], [5, 1]], "standardize": True},
        {"target_noise": -0.1},
        {"target_clip": [0.0]},
    ],
)
def test_bad_target_transforms_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="final.objective"):
        RegressionObjective("mse", **kwargs)
