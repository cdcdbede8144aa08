"""Metrics shared by every family: parameter recovery, success, function-space error,
training and test loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, Metric, SolveResult, Weights, param


def relative_error(instance: Instance, weights: Weights) -> torch.Tensor:
    """||W - W* P||_F / ||W*||_F over all weight tensors with a ground truth, after the model's
    alignment (best permutation of hidden units) and on its recovery view (effective weights)."""
    model = instance.model
    truth = {k: v for k, v in instance.truth.items() if k in weights}
    aligned = model.align(weights, truth)
    est, ref = model.recovery_view(aligned), model.recovery_view(truth)
    num = sum((est[k] - ref[k]).reshape(est[k].shape[0], -1).pow(2).sum(1) for k in ref)
    den = sum(ref[k].reshape(ref[k].shape[0], -1).pow(2).sum(1) for k in ref)
    return (num / den).sqrt()


def _has_truth(instance: Instance) -> bool:
    return bool(instance.truth) and set(instance.truth) <= set(instance.model.param_shapes())


class ParamError(Metric):
    """Relative Frobenius error ||W - W* P||_F / ||W*||_F after the best permutation P of hidden
    units (Hungarian matching; none for a single neuron), on the model's effective weights."""

    name = "param_error"
    role = "error"

    def applies(self, instance: Instance) -> bool:
        return _has_truth(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        return relative_error(instance, weights)


@dataclass(frozen=True)
class SuccessParams:
    threshold: float = param(
        0.01, "param_error below which a trial counts as a success", exclusive_min=True, min=0.0
    )


class Success(Metric):
    """1 if param_error < threshold else 0 (phase-transition plots average it over trials)."""

    name = "success"
    role = "success"
    Params = SuccessParams

    def applies(self, instance: Instance) -> bool:
        return _has_truth(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        err = relative_error(instance, weights)
        return (err < self.params.threshold).to(err.dtype)  # NaN error counts as failure


class TrainLoss(Metric):
    """The model's training objective on the training set (squared loss (1/2n) sum (f - y)^2
    for teacher-student problems)."""

    name = "train_loss"
    role = "loss"

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        return instance.model.loss(weights, instance.X, instance.y)


class TestLoss(Metric):
    """The model's objective on the held-out test set (problems with n_test > 0)."""

    name = "test_loss"
    role = "error"

    def applies(self, instance: Instance) -> bool:
        return instance.X_test is not None

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        return instance.model.loss(weights, instance.X_test, instance.y_test)


class FunctionError(Metric):
    """Recovery judged in function space: ||f(X_test; W) - f*(X_test)|| / ||f*(X_test)|| over the
    held-out test inputs, where f* is the teacher's noiseless output (``y_test``).

    Unlike param_error it does not depend on how the weights parametrise the
    function: a student that computes the teacher's function through other
    weights (a dead unit's arbitrary inputs, a symmetry the matching does not
    undo) scores 0. Needs a ground truth and a test split (``n_test > 0``).
    """

    name = "function_error"
    role = "error"

    def applies(self, instance: Instance) -> bool:
        return _has_truth(instance) and instance.X_test is not None

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        with torch.no_grad():
            out = instance.model.forward(weights, instance.X_test)
        ref = instance.y_test.reshape(out.shape)
        num = (out - ref).reshape(out.shape[0], -1).norm(dim=1)
        return num / ref.reshape(ref.shape[0], -1).norm(dim=1)


class TestError(Metric):
    """Error on the held-out test set: for class labels (``extras['labels_test']``) the
    misclassification rate; otherwise the mean squared error over test samples and output
    units, in the (scaled) target units the model was trained on (Sinha et al. Table 3;
    Li & Yuan Fig. 7a). Not defined for autoencoders or problems without a test split."""

    __test__ = False  # not a pytest class, despite the name
    name = "test_error"
    role = "error"

    def applies(self, instance: Instance) -> bool:
        return instance.X_test is not None and not instance.extras.get("autoencoder", False)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        with torch.no_grad():
            out = instance.model.forward(weights, instance.X_test)
        labels = instance.extras.get("labels_test")
        if labels is not None:
            wrong = (out.argmax(-1) != labels).to(out.dtype).mean(1)
            finite = torch.isfinite(out.reshape(out.shape[0], -1)).all(1)
            return torch.where(finite, wrong, torch.full_like(wrong, float("nan")))
        r = out - instance.y_test.reshape(out.shape)
        return r.pow(2).reshape(r.shape[0], -1).mean(1)
