"""DANTE: alternating minimization over layers, each sub-problem solved by SNGD
(Sinha et al., "DANTE: Deep AlterNations for Training nEural networks", Algorithms 1-3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from harness import (
    Initializer,
    Instance,
    Problem,
    SolveContext,
    Solver,
    SolveResult,
    TrialStopper,
    Weights,
    param,
)
from plugins.common.mlp import MLPModel, mse, split_identity
from plugins.dante.minibatch import (
    expand_like,
    flat_epoch_batches,
    flatten_trials,
    per_trial_norm,
    sole_owner,
    take,
)

LossFn = Callable[[Weights, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DanteParams:
    lr: float = param(
        0.1, "eta: every step moves the current layer by exactly lr", min=0.0, exclusive_min=True
    )
    epochs_per_layer: int = param(5, "T: SNGD epochs per layer visit (the paper uses 5)", min=1)
    rounds: int = param(10, "T_AM: alternation rounds (every layer visited once per round)", min=1)
    batch_size: int = param(32, "minibatch size b", min=1)
    momentum: float = param(
        0.0, "heavy-ball momentum on the normalized steps (Table 1)", min=0.0, max=1.0
    )
    schedule: Literal["round_robin", "pairs"] = param(
        "round_robin",
        "round_robin: layers one after another (Sec. 3.5); pairs: autoencoder layer pairs "
        "from the outside in (Algorithm 3, Fig. 1)",
    )
    order: Literal["backward", "forward"] = param(
        "backward", "visit order within a round: output layer first (Algorithm 2) or input first"
    )
    tol: float = param(
        0.0, "epsilon: a trial stops once its loss changes by less between rounds", min=0.0
    )


class Dante(Solver):
    """DANTE (Sinha et al. 2020): alternate over the layers of the network; with the other
    layers fixed, each layer's sub-problem is SLQC and is solved by stochastic normalized
    gradient descent (Algorithm 1, SNGD: w <- w - eta g/||g|| on minibatches) for T epochs
    (Algorithm 2). Deeper networks visit the layers round-robin (Sec. 3.5), or, for
    autoencoders, train symmetric layer pairs from the outside in (Algorithm 3, Fig. 1).

    Families: ``mlp`` (a layer is W_l with its bias b_l), and the teacher-student
    families ``one_hidden``, ``two_hidden``, ``skip`` (a layer is one named weight tensor).
    Traces record ``weights_updated``, the paper's x-axis.
    """

    name = "dante"
    budget_axes = ("weights_updated",)
    Params = DanteParams
    families = ("mlp", "one_hidden", "two_hidden", "skip")

    def skip(self, problem: Problem, initializer: Initializer) -> str | None:
        hidden = getattr(problem.params, "hidden", "")
        if problem.family() == "mlp" and isinstance(hidden, str) and split_identity(hidden)[0]:
            # Each sub-problem is one layer's phi(a W + b) (Algorithm 2); a block with an
            # identity mapping, phi(a + a W + b), is not what DANTE's SLQC analysis covers.
            return "DANTE's layer-wise sub-problems assume no identity mappings ('identity:')"
        if self.params.schedule == "pairs":
            if problem.family() != "mlp":
                return "schedule 'pairs' needs an mlp autoencoder"
            if not getattr(problem.params, "autoencoder", False):
                return "schedule 'pairs' trains autoencoders (problem option autoencoder = true)"
        return None

    # -- the inner solver ---------------------------------------------------------
    def direction(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Algorithm 1: the minibatch gradient of the layer divided by its norm, per trial.

        Scales ``grads`` in place (the solver owns them: fresh from autograd) and
        returns them."""
        norm = per_trial_norm(grads)
        # A zero gradient gives a zero step instead of 0/0.
        scale = 1.0 / norm.clamp_min(torch.finfo(grads[0].dtype).tiny)
        return [_owned(g, grads).mul_(expand_like(scale, g)) for g in grads]

    # -- the outer loop -------------------------------------------------------------
    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model = instance.model
        X, y = instance.X, instance.y
        n = X.shape[1]
        w = {k: v.detach().clone() for k, v in weights.items()}
        run = _Run(p, self.direction, ctx, w, n, X.device)
        ctx.record(0, w, weights_updated=run.updated.clone())
        if isinstance(model, MLPModel):
            if p.schedule == "pairs":
                run.pairs(model, X)
            else:
                run.round_robin_mlp(model, X, y)
        else:
            if p.schedule == "pairs":
                raise ValueError("schedule 'pairs' needs an mlp autoencoder")
            run.round_robin_generic(model, X, y)
        return SolveResult(run.w, run.stop.iterations, info={"weights_updated": run.updated})


class _Run:
    """One DANTE solve: the weights being trained, per-trial activity and counters,
    and the schedules (Algorithm 2 round-robin, Algorithm 3 pairs) over SNGD visits."""

    def __init__(
        self,
        params: DanteParams,
        direction: Callable[[list[torch.Tensor]], list[torch.Tensor]],
        ctx: SolveContext,
        w: Weights,
        n: int,
        device: torch.device,
    ) -> None:
        B = next(iter(w.values())).shape[0]
        self.params, self.direction, self.ctx, self.w, self.n = params, direction, ctx, w, n
        # Which trials still train (Algorithm 2's tolerance) and their SNGD steps so far.
        self.stop = TrialStopper(B, device=device)
        self.updated = torch.zeros(B, dtype=torch.float64, device=device)
        self.step = 0

    def round_robin_mlp(self, model: MLPModel, X: torch.Tensor, y: torch.Tensor) -> None:
        p = self.params
        layers = list(range(model.n_layers))
        if p.order == "backward":
            layers.reverse()
        for _ in range(p.rounds):
            before = self._full_loss(lambda w: model.loss(w, X, y))
            for l in layers:
                with torch.no_grad():
                    H = model.forward(self.w, X, 0, l)  # inputs of layer l, fixed meanwhile

                def loss(
                    w: Weights, Hb: torch.Tensor, Tb: torch.Tensor, l: int = l
                ) -> torch.Tensor:
                    return model.objective(model.forward(w, Hb, l), Tb)

                self._sngd(model.layer_names(l), model.layer_size(l), H, y, loss)
            if self._converged(before, lambda w: model.loss(w, X, y)):
                return

    def pairs(self, model: MLPModel, X: torch.Tensor) -> None:
        """Algorithm 3: train (W_q, W_{L-1-q}) as a one-hidden-layer autoencoder of a_q."""
        p = self.params
        L, sizes = model.n_layers, model.sizes
        if L % 2 or sizes != sizes[::-1]:
            raise ValueError(
                f"schedule 'pairs' needs a symmetric autoencoder (e.g. hidden = \"400-200-400\" "
                f"with input = output size); got layer sizes {'-'.join(map(str, sizes))}"
            )
        for q in range(L // 2):
            enc, dec = q, L - 1 - q
            with torch.no_grad():
                A = model.forward(self.w, X, 0, q)  # a_q: input and target of the pair

            def pair_loss(w: Weights, A: torch.Tensor = A, enc: int = enc, dec: int = dec):
                return mse(model.apply_layer(w, dec, model.apply_layer(w, enc, A)), A)

            order = (dec, enc) if p.order == "backward" else (enc, dec)
            for _ in range(p.rounds):
                before = self._full_loss(pair_loss)
                for l in order:
                    if l == enc:
                        H = A

                        def loss(w: Weights, Hb: torch.Tensor, Tb: torch.Tensor, enc=enc, dec=dec):
                            return mse(model.apply_layer(w, dec, model.apply_layer(w, enc, Hb)), Tb)
                    else:
                        with torch.no_grad():
                            H = model.apply_layer(self.w, enc, A)

                        def loss(w: Weights, Hb: torch.Tensor, Tb: torch.Tensor, dec=dec):
                            return mse(model.apply_layer(w, dec, Hb), Tb)

                    self._sngd(model.layer_names(l), model.layer_size(l), H, A, loss)
                if self._converged(before, pair_loss):
                    break
            # A converged pair does not stop the next one: a new stopper, counts carried over.
            self.stop = TrialStopper(len(self.updated), iterations=self.stop.iterations)

    def round_robin_generic(self, model: Any, X: torch.Tensor, y: torch.Tensor) -> None:
        p = self.params
        shapes = model.param_shapes()
        names = list(shapes)
        if p.order == "backward":
            names.reverse()
        for _ in range(p.rounds):
            before = self._full_loss(lambda w: model.loss(w, X, y))
            for name in names:
                size = 1
                for s in shapes[name]:
                    size *= s
                self._sngd((name,), size, X, y, model.loss)
            if self._converged(before, lambda w: model.loss(w, X, y)):
                return

    # -- helpers --------------------------------------------------------------------
    def _full_loss(self, fn: Callable[[Weights], torch.Tensor]) -> torch.Tensor | None:
        if self.params.tol <= 0:
            return None
        with torch.no_grad():
            return fn(self.w)

    def _converged(
        self, before: torch.Tensor | None, fn: Callable[[Weights], torch.Tensor]
    ) -> bool:
        """Algorithm 2's stopping rule |f(W^t) - f(W^{t-1})| < epsilon, per trial."""
        if before is None:
            return False
        after = self._full_loss(fn)
        assert after is not None
        self.stop.halt(converged=(after - before).abs() < self.params.tol)
        return self.stop.done

    def _sngd(
        self, group: tuple[str, ...], size: int, H: torch.Tensor, T: torch.Tensor, loss: LossFn
    ) -> None:
        """T epochs of minibatch steps on the weights ``group`` only (Algorithm 1)."""
        p, w, ctx = self.params, self.w, self.ctx
        velocity = [torch.zeros_like(w[k]) for k in group]  # a fresh SNGD run per layer visit
        B = H.shape[0]
        Hf, Tf = flatten_trials(H), flatten_trials(T)  # once: each minibatch is an index_select
        for _ in range(p.epochs_per_layer):
            for idx in flat_epoch_batches(ctx.generators, self.n, p.batch_size, H.device):
                Hb, Tb = take(Hf, idx, B), take(Tf, idx, B)
                # Leaves share w's storage: the step below updates w in place.
                leaves = [w[k].detach().requires_grad_(True) for k in group]
                with torch.enable_grad():
                    total = loss({**w, **dict(zip(group, leaves))}, Hb, Tb).sum()
                    grads = torch.autograd.grad(total, leaves)
                with torch.no_grad():
                    step = self.direction(list(grads))
                    scale = [p.lr * expand_like(self.stop.running, w[k]) for k in group]
                    for i, k in enumerate(group):
                        if p.momentum:
                            velocity[i] = p.momentum * velocity[i] + step[i]
                            w[k].sub_(scale[i] * velocity[i])  # w <- w - lr [active] v
                        else:
                            # The same product, rounded the same way, written into the
                            # step's own (fresh) buffer instead of a new tensor.
                            w[k].sub_(_owned(step[i], grads).mul_(scale[i]))
                self.updated += self.stop.running.double() * size
                self.stop.update()
                self.step += 1
                if ctx.wants(self.step):
                    ctx.record(self.step, w, weights_updated=self.updated.clone())


def _owned(t: torch.Tensor, among: list[torch.Tensor]) -> torch.Tensor:
    """``t`` itself when no other tensor of ``among`` shares its memory (so updating it in
    place touches nothing else), else a copy."""
    return t if sole_owner(t, among) else t.clone()


@dataclass(frozen=True)
class DanteSGDParams(DanteParams):
    lr: float = param(
        1.0, "eta: SGD step size (steps are not normalized)", min=0.0, exclusive_min=True
    )


class DanteSGD(Dante):
    """DANTE with plain SGD inside (Sinha et al. Sec. 4.2.2, Table 2 "SGD+AltMin"): the same
    alternation over layers as Algorithm 2, each layer updated by w <- w - eta g with the
    raw minibatch gradient instead of SNGD's normalized one."""

    name = "dante_sgd"
    Params = DanteSGDParams

    def direction(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        return grads
