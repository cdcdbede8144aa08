"""MLPs with identity mappings (Li & Yuan Sec. 5.4 blocks): forward, gradients, zero init,
parameter checks, and DANTE's refusal."""

from __future__ import annotations

import pytest
import torch

from harness import InputError, SolveContext
from harness.components import ParameterError
from plugins.common.initializers import Zero
from plugins.common.mlp import Glorot, MLPModel
from plugins.dante.backprop import Backprop
from plugins.dante.dante import Dante, DanteSGD
from plugins.datasets.problems import Digits

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gens(seed: int, B: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(B)]


def random_weights(model: MLPModel, B: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, *s, generator=g, dtype=DT) for k, s in model.param_shapes().items()}


def digits(B: int, init: str, **params):
    problem = Digits(
        Digits.make_params(
            {"activation": "relu", "loss": "cross_entropy", "n_train": 256, "n_test": 64, **params}
        )
    )
    instance = problem.sample(gens(0, B), DT)
    initializer = Zero() if init == "zero" else Glorot()
    return problem, instance, initializer.initialize(instance, gens(100, B), DT)


def train(instance, w0, steps_epochs: int, lr: float = 0.1):
    solver = Backprop(Backprop.make_params({"lr": lr, "epochs": steps_epochs, "batch_size": 64}))
    B = instance.X.shape[0]
    ctx = SolveContext(device=torch.device("cpu"), dtype=DT, generators=gens(200, B))
    return solver.solve(instance, {k: v.clone() for k, v in w0.items()}, ctx)


def test_forward_is_relu_of_input_plus_linear_layer_in_every_hidden_block():
    model = MLPModel((4, 4, 4, 3), "relu", "cross_entropy", identity=True)
    w = random_weights(model, B=2, seed=1)
    X = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(2), dtype=DT)
    h = X
    for l in range(2):  # h_{l+1} = relu(h_l + h_l W_l + b_l)
        h = torch.relu(h + h @ w[f"W{l}"] + w[f"b{l}"].unsqueeze(1))
    logits = h @ w["W2"] + w["b2"].unsqueeze(1)  # the output layer has no identity
    assert torch.allclose(model.forward(w, X), logits, atol=1e-12)
    plain = MLPModel((4, 4, 4, 3), "relu", "cross_entropy")
    assert not torch.allclose(plain.forward(w, X), logits)


def test_gradient_of_identity_network_matches_finite_differences():
    model = MLPModel((3, 3, 3, 2), "leaky_relu", "cross_entropy", identity=True)
    B = 2
    w = random_weights(model, B, seed=3)
    g = torch.Generator().manual_seed(4)
    X = torch.randn(B, 6, 3, generator=g, dtype=DT)
    y = torch.randint(0, 2, (B, 6), generator=g)
    names = list(w)
    leaves = [w[k].clone().requires_grad_(True) for k in names]
    total = model.loss(dict(zip(names, leaves)), X, y).sum()
    grads = dict(zip(names, torch.autograd.grad(total, leaves)))
    eps = 1e-6
    for k in names:
        flat = w[k].reshape(-1)
        for i in range(flat.numel()):
            plus = {n: v.clone() for n, v in w.items()}
            minus = {n: v.clone() for n, v in w.items()}
            plus[k].reshape(-1)[i] += eps
            minus[k].reshape(-1)[i] -= eps
            fd = (model.loss(plus, X, y).sum() - model.loss(minus, X, y).sum()) / (2 * eps)
            assert grads[k].reshape(-1)[i].item() == pytest.approx(fd.item(), abs=1e-7)


def test_zero_init_learns_with_identity_mappings():
    _, instance, w0 = digits(B=2, init="zero", hidden="identity:64-64-64")
    model = instance.model
    before = model.loss(w0, instance.X, instance.y)
    res = train(instance, w0, steps_epochs=10)
    after = model.loss(res.weights, instance.X, instance.y)
    # From log(10) = 2.30 to about 1.1 in 40 steps (without identity: 2.29, dead units).
    assert torch.all(after < 0.6 * before), (before, after)
    for l in range(3):  # every hidden block moved away from zero
        assert torch.all(res.weights[f"W{l}"].abs().amax(dim=(1, 2)) > 0)


def test_zero_init_without_identity_stays_dead():
    _, instance, w0 = digits(B=2, init="zero", hidden="64-64-64")
    model = instance.model
    names = list(w0)
    leaves = [w0[k].clone().requires_grad_(True) for k in names]
    total = model.loss(dict(zip(names, leaves)), instance.X, instance.y).sum()
    grads = dict(zip(names, torch.autograd.grad(total, leaves)))
    for l in range(3):  # hidden layers: gradient exactly zero
        assert torch.count_nonzero(grads[f"W{l}"]) == 0
        assert torch.count_nonzero(grads[f"b{l}"]) == 0
    assert torch.count_nonzero(grads["W3"]) == 0  # the hidden units output 0
    assert torch.count_nonzero(grads["b3"]) > 0  # only the output bias can learn
    res = train(instance, w0, steps_epochs=3)
    for k in names[:-1]:  # every weight but the output bias is still exactly zero
        assert torch.count_nonzero(res.weights[k]) == 0, k


def test_identity_needs_hidden_layers_of_the_input_width():
    for bad in ("identity:64-32", "identity:", "identity:64-x"):
        with pytest.raises(ParameterError) as exc:
            Digits.make_params({"hidden": bad})
        assert exc.value.key == "hidden"
        if bad != "identity:64-x":  # that one is a width-list error, as without the prefix
            assert "identity" in exc.value.message
    # The input width (64 for digits) is the dataset's: checked when the problem is sampled.
    problem = Digits(Digits.make_params({"hidden": "identity:32-32"}))
    with pytest.raises(InputError, match="input width 64"):
        problem.sample(gens(0, 1), DT)
    with pytest.raises(ValueError, match="identity"):
        MLPModel((4, 5, 2), identity=True)
    # Without the prefix any widths stay allowed, and the model has no identity.
    plain = Digits(Digits.make_params({"hidden": "64-32"})).sample(gens(0, 1), DT)
    assert plain.model.identity is False


def test_no_new_parameter_so_existing_seeds_are_unchanged():
    # Trial seeds derive from every parameter value, defaults included: identity mappings
    # live in `hidden`, so the parameter set of every mlp problem is what it was.
    names = {s.name for s in Digits.param_specs()}
    assert "identity" not in names and "hidden" in names


@pytest.mark.parametrize("solver_cls", [Dante, DanteSGD])
def test_dante_refuses_identity_models(solver_cls):
    problem, _, _ = digits(B=1, init="glorot", hidden="identity:64-64")
    solver = solver_cls(solver_cls.make_params({}))
    reason = solver.skip(problem, Glorot())
    assert reason is not None and "identity" in reason
    plain = Digits(Digits.make_params({"hidden": "64-64"}))
    assert solver.skip(plain, Glorot()) is None
