"""Metrics of the dataset problems: test accuracy and the SVM probe (Table 4).

The test error of regression problems is the shared ``test_error`` of plugins/common.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from harness import Instance, Metric, SolveResult, Weights, param
from plugins.common.mlp import MLPModel


def _is_autoencoder(instance: Instance) -> bool:
    return bool(instance.extras.get("autoencoder", False))


class TestAccuracy(Metric):
    """Fraction of test samples whose largest network output is the true class."""

    __test__ = False  # not a pytest class, despite the name
    name = "test_accuracy"
    role = "score"
    direction = "higher"
    families = ("mlp",)

    def applies(self, instance: Instance) -> bool:
        return (
            instance.X_test is not None
            and "labels_test" in instance.extras
            and not _is_autoencoder(instance)
        )

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        assert instance.X_test is not None
        with torch.no_grad():
            out = instance.model.forward(weights, instance.X_test)  # (B, n_test, c)
        pred = out.argmax(-1)
        acc = (pred == instance.extras["labels_test"]).to(torch.float64).mean(1)
        # A diverged trial has no prediction, not a lucky argmax over NaNs.
        finite = torch.isfinite(out.reshape(out.shape[0], -1)).all(1)
        return torch.where(finite, acc, torch.full_like(acc, math.nan))


@dataclass(frozen=True)
class SvmProbeParams:
    layer: int = param(
        0,
        "hidden layer a_l whose activations are the features (1 = first hidden layer); "
        "0: the code (middle) layer of an autoencoder, else the last hidden layer",
        min=0,
    )
    C: float = param(1.0, "LinearSVC regularization parameter", min=0.0, exclusive_min=True)
    standardize: bool = param(True, "standardize the features (statistics of the training part)")


class SvmProbe(Metric):
    """Test accuracy of a linear SVM (scikit-learn LinearSVC) trained on the hidden
    representation of the training samples, as in Sinha et al. Table 4 (autoencoder features)."""

    name = "svm_probe"
    role = "score"
    direction = "higher"
    Params = SvmProbeParams
    families = ("mlp",)

    def applies(self, instance: Instance) -> bool:
        model = instance.model
        return (
            isinstance(model, MLPModel)
            and model.n_layers >= 2
            and instance.X_test is not None
            and "labels" in instance.extras
            and "labels_test" in instance.extras
        )

    def feature_layer(self, instance: Instance) -> int:
        model: MLPModel = instance.model  # type: ignore[assignment]
        if self.params.layer:
            if self.params.layer >= model.n_layers:
                raise ValueError(
                    f"svm_probe layer = {self.params.layer}: the network has hidden layers "
                    f"1..{model.n_layers - 1}"
                )
            return self.params.layer
        return model.n_layers // 2 if _is_autoencoder(instance) else model.n_layers - 1

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        assert instance.X_test is not None
        model: MLPModel = instance.model  # type: ignore[assignment]
        l = self.feature_layer(instance)
        with torch.no_grad():
            H = model.forward(weights, instance.X, 0, l).cpu().numpy()
            H_test = model.forward(weights, instance.X_test, 0, l).cpu().numpy()
        y = instance.extras["labels"].cpu().numpy()
        y_test = instance.extras["labels_test"].cpu().numpy()
        scores = []
        for b in range(H.shape[0]):
            F, F_test = H[b], H_test[b]
            if not (math.isfinite(F.sum()) and math.isfinite(F_test.sum())):
                scores.append(math.nan)
                continue
            if self.params.standardize:
                mu, sd = F.mean(0), F.std(0)
                sd[sd == 0] = 1.0
                F, F_test = (F - mu) / sd, (F_test - mu) / sd
            svm = LinearSVC(C=self.params.C, dual="auto", max_iter=5000, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(F, y[b])
            scores.append(float((svm.predict(F_test) == y_test[b]).mean()))
        return torch.tensor(scores, dtype=torch.float64)


METRICS = [TestAccuracy, SvmProbe]
