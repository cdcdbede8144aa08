"""The ``mlp`` model family: feed-forward networks in the notation of Sinha et al. (DANTE).

Layer l (0-based) maps ``n_l`` to ``n_{l+1}`` units: ``a_{l+1} = phi_l(a_l W_l + b_l)``
(Eq. 1 of the DANTE paper, with a bias per layer). Weights, trial dimension first:

==========  ===================  =====================================
name        shape                meaning
==========  ===================  =====================================
``W{l}``    (B, n_l, n_{l+1})    linear operator of layer l
``b{l}``    (B, n_{l+1})         bias of layer l
==========  ===================  =====================================

The architecture is written as in the paper: ``hidden = "400-200"`` gives
784 -> 400 -> 200 -> 10 on MNIST; ``hidden = ""`` is a single layer (a GLM).
Hidden activations are the generalized ReLU of Definition 3 (leaky ReLU with
slopes ``a`` below zero and ``b`` above), the ReLU, or the sigmoid. With the MSE
loss the output layer uses the same activation (Eq. 1: every layer has its phi)
unless ``output = "linear"``; with cross-entropy it is a softmax (Sec. 3.3).

With the prefix ``identity:`` (``hidden = "identity:784-784"``) every hidden layer is a
residual block ``a_{l+1} = phi(a_l + a_l W_l + b_l)``: a linear layer, an identity mapping
and the activation, the block of Li & Yuan's Sec. 5.4 experiment. The identity is no weight
(``W{l}`` stays the linear layer), and it needs every hidden width equal to the input
width; the output layer has no identity. It is part of ``hidden`` rather than a parameter
of its own because trial seeds derive from every parameter value, defaults included: a new
parameter would have changed the initial weights of every existing ``mlp`` suite.

The training objective :meth:`MLPModel.loss` is the per-trial mean over samples
of the MSE averaged over output units (the scale of the paper's Table 1 test
losses), or of the cross-entropy with class-index targets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from harness import Initializer, InputError, Instance, Model, Weights, param

ACTIVATIONS = ("leaky_relu", "relu", "sigmoid")
LOSSES = ("mse", "cross_entropy")


def parse_hidden(spec: str) -> tuple[int, ...]:
    """Hidden layer widths from the paper's notation: ``"400-200"`` -> ``(400, 200)``.

    An empty string (or ``"none"``) means no hidden layer. Raises ``ValueError``
    with a message that says what is allowed.
    """
    text = spec.strip()
    if text in ("", "none", "-"):
        return ()
    parts = text.split("-")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f'hidden = {spec!r} is not a list of layer widths such as "400-200"'
        ) from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"hidden = {spec!r}: every layer width must be >= 1")
    return sizes


IDENTITY_PREFIX = "identity:"


def split_identity(spec: str) -> tuple[bool, str]:
    """``"identity:784-784"`` -> ``(True, "784-784")``; ``"784-784"`` -> ``(False, "784-784")``."""
    text = spec.strip()
    if text.startswith(IDENTITY_PREFIX):
        return True, text[len(IDENTITY_PREFIX) :]
    return False, text


def generalized_relu(t: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Definition 3: a*x for x <= 0, b*x for x > 0 (0 < a <= b); a = 0.01, b = 1 is leaky ReLU."""
    return torch.where(t > 0, b * t, a * t)


class MLPModel(Model):
    """Feed-forward network ``f(x) = phi_L(... phi_1(x W_0 + b_0) ...)`` (DANTE Eq. 1)."""

    family = "mlp"

    def __init__(
        self,
        sizes: tuple[int, ...],
        activation: str = "leaky_relu",
        loss: str = "mse",
        a: float = 0.01,
        b: float = 1.0,
        output: str = "activation",
        scalar_output: bool = False,
        identity: bool = False,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs an input and an output size, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {ACTIVATIONS}")
        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r} is not one of {LOSSES}")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation, self.loss_name = activation, loss
        self.a, self.b, self.output = float(a), float(b), output
        if scalar_output and self.sizes[-1] != 1:
            raise ValueError("scalar_output needs a single output unit")
        self.scalar_output = scalar_output
        self.identity = bool(identity)
        if self.identity:
            bad = identity_mismatch(self.sizes)
            if bad:
                raise ValueError(bad)
        self.memo = LayerMemo()

    # -- structure ------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for l in range(self.n_layers):
            shapes[f"W{l}"] = (self.sizes[l], self.sizes[l + 1])
            shapes[f"b{l}"] = (self.sizes[l + 1],)
        return shapes

    def layer_names(self, l: int) -> tuple[str, str]:
        """The weight names of layer ``l``: what one DANTE sub-problem optimizes."""
        return (f"W{l}", f"b{l}")

    def layer_size(self, l: int) -> int:
        """Number of scalar weights in layer ``l`` (the paper's "weights updated" unit)."""
        return self.sizes[l] * self.sizes[l + 1] + self.sizes[l + 1]

    # -- computation ----------------------------------------------------------
    def phi(self, t: torch.Tensor) -> torch.Tensor:
        """The hidden activation."""
        if self.activation == "leaky_relu":
            if self.b == 1.0:  # one fused kernel, the same values and gradient as the where
                return torch.nn.functional.leaky_relu(t, self.a)
            return generalized_relu(t, self.a, self.b)
        if self.activation == "relu":
            return torch.clamp_min(t, 0)
        return torch.sigmoid(t)

    def apply_layer(self, weights: Weights, l: int, H: torch.Tensor) -> torch.Tensor:
        """Layer ``l`` on inputs ``H`` (B, n, n_l) -> (B, n, n_{l+1}).

        The output layer returns logits under cross-entropy (the softmax lives in
        the loss), the pre-activation when ``output = "linear"``, and (B, n) instead
        of (B, n, 1) for a ``scalar_output`` (regression targets are (B, n), as in
        every other family).
        """
        if not torch.is_grad_enabled():
            # Metrics and traces evaluate the same layers on the same fixed tensors again
            # and again (the test set for test_loss and test_accuracy, the layers a DANTE
            # visit does not change): the stored output of that very computation.
            return self.memo.get_or_compute(l, H, weights, self._apply_layer)
        return self._apply_layer(weights, l, H)

    def _apply_layer(self, weights: Weights, l: int, H: torch.Tensor) -> torch.Tensor:
        if H.dim() == 2:  # a scalar regression output fed back in (B, n) -> (B, n, 1)
            H = H.unsqueeze(-1)
        Z = torch.baddbmm(weights[f"b{l}"].unsqueeze(1), H, weights[f"W{l}"])
        if l < self.n_layers - 1:
            if self.identity:  # Li & Yuan Sec. 5.4 block: phi(h + h W + b)
                Z = Z + H
            return self.phi(Z)
        if self.loss_name != "cross_entropy" and self.output != "linear":
            Z = self.phi(Z)
        return Z.squeeze(-1) if self.scalar_output else Z

    def forward(
        self, weights: Weights, X: torch.Tensor, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """Layers ``start .. stop-1`` applied to ``X``; the whole network by default."""
        H = X
        for l in range(start, self.n_layers if stop is None else stop):
            H = self.apply_layer(weights, l, H)
        return H

    def objective(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-trial loss (B,) of network outputs ``out`` (B, n, c) against targets ``y``."""
        if self.loss_name == "cross_entropy":
            # y holds class indices (B, n).
            logp = torch.log_softmax(out, dim=-1)
            return -logp.gather(-1, y.long().unsqueeze(-1)).squeeze(-1).mean(1)
        return mse(out, y)

    def loss(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(self.forward(weights, X), y)


class LayerMemo:
    """The outputs of recent layer evaluations done without autograd.

    Metrics and traces evaluate the same layers on the same fixed tensors again and
    again: test_loss and test_accuracy both run the network on the test set, and while
    DANTE trains one layer every layer below it stays fixed between trace points. An
    entry is keyed by the layer and by the very tensor objects it read (the input and
    the layer's ``W``/``b``) and remembers their version counters, which every in-place
    update (an optimizer step) increments; it holds those tensors, so no other tensor
    can take their ``id`` while it lives. A hit is the tensor the same computation
    produced before, so results are bitwise those of recomputing; an output changed in
    place since is never returned. At most ``max_bytes`` of outputs are kept (least
    recently used dropped first; dropping an output drops the entries it was the input
    of, so no input is held once its own entry is gone).
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple, tuple[tuple[torch.Tensor, ...], tuple, torch.Tensor]]
        self.entries = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = 0

    def get_or_compute(
        self,
        l: int,
        H: torch.Tensor,
        weights: Weights,
        compute: Callable[[Weights, int, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        reads = (H, weights[f"W{l}"], weights[f"b{l}"])
        if any(t.is_inference() or t.requires_grad for t in reads):
            return compute(weights, l, H)  # inference tensors have no version counter
        key = (l, *map(id, reads))
        versions = tuple(t._version for t in reads)
        entry = self.entries.get(key)
        if entry is not None:
            held, seen, out = entry
            if all(a is t for a, t in zip(held, reads)) and seen == (*versions, out._version):
                self.entries.move_to_end(key)
                self.hits += 1
                return out
            self._drop(key)
        self.misses += 1
        out = compute(weights, l, H)
        size = out.numel() * out.element_size()
        if size <= self.max_bytes:
            self.entries[key] = (reads, (*versions, out._version), out)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                self._drop(next(iter(self.entries)))
        return out

    def _drop(self, key: tuple) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        out = entry[2]
        self.nbytes -= out.numel() * out.element_size()
        for k in [k for k, e in self.entries.items() if e[0][0] is out]:
            self._drop(k)


def identity_mismatch(sizes: tuple[int, ...]) -> str | None:
    """Why ``sizes`` (input, hidden..., output) cannot have identity mappings, or None.

    An identity mapping adds a block's input to its output, so every hidden width
    must equal the input width, and there must be a hidden layer to carry it.
    """
    hidden = sizes[1:-1]
    if not hidden:
        return 'identity mappings ("identity:" in hidden) need at least one hidden layer'
    if any(h != sizes[0] for h in hidden):
        widths = "-".join(str(h) for h in hidden)
        return (
            f'hidden = "identity:{widths}": identity mappings need every hidden width equal '
            f'to the input width {sizes[0]} (e.g. "identity:{sizes[0]}-{sizes[0]}")'
        )
    return None


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-trial mean squared error over samples and output units, shape (B,)."""
    r = out - target.reshape(out.shape)
    return r.pow(2).reshape(r.shape[0], -1).mean(1)


@dataclass(frozen=True)
class MLPParams:
    """The model half of an ``mlp`` problem's parameters (datasets add their own)."""

    hidden: str = param(
        "100",
        'hidden layer widths in the paper\'s notation, e.g. "400-200"; the prefix "identity:" '
        '("identity:784-784") adds an identity mapping to every hidden layer (Li & Yuan Sec. 5.4)',
    )
    activation: Literal["leaky_relu", "relu", "sigmoid"] = param(
        "leaky_relu", "hidden activation; leaky_relu is the generalized ReLU (Def. 3)"
    )
    a: float = param(0.01, "generalized ReLU slope below zero (Def. 3)", min=0.0)
    b: float = param(1.0, "generalized ReLU slope above zero (Def. 3)", exclusive_min=True, min=0.0)
    loss: Literal["mse", "cross_entropy"] = param(
        "mse", "mse: one-hot targets; cross_entropy: softmax output, class-index targets"
    )
    output: Literal["activation", "linear"] = param(
        "activation", "MSE output layer: the hidden activation (Eq. 1) or linear"
    )


def check_mlp_params(p: MLPParams) -> tuple[str, str] | None:
    """Cross-parameter checks shared by every ``mlp`` problem."""
    identity, spec = split_identity(p.hidden)
    try:
        hidden = parse_hidden(spec)
    except ValueError as exc:
        return ("hidden", str(exc))
    if identity:
        # The input width is the dataset's, known only when sampling (build_mlp checks it);
        # here: there are hidden layers, all of one width.
        if not hidden:
            return ("hidden", 'the prefix "identity:" needs hidden layers, e.g. "identity:784"')
        if len(set(hidden)) > 1:
            return (
                "hidden",
                f"hidden = {p.hidden!r}: identity mappings need every hidden layer as wide as "
                f'the input, so all of one width (e.g. "identity:784-784-784")',
            )
    if p.activation == "leaky_relu" and p.a > p.b:
        return ("a", f"the generalized ReLU needs 0 <= a <= b, got a={p.a}, b={p.b}")
    return None


def build_mlp(p: MLPParams, d_in: int, d_out: int, scalar_output: bool = False) -> MLPModel:
    """The student network of an ``mlp`` problem with ``d_in`` inputs and ``d_out`` outputs."""
    identity, spec = split_identity(p.hidden)
    sizes = (d_in, *parse_hidden(spec), d_out)
    if identity:
        bad = identity_mismatch(sizes)
        if bad:  # the input width is the dataset's: an input error, not a bug
            raise InputError(bad)
    return MLPModel(sizes, p.activation, p.loss, p.a, p.b, p.output, scalar_output, identity)


# ---------------------------------------------------------------------------
# Initializer
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GlorotParams:
    distribution: Literal["uniform", "normal"] = param(
        "uniform", "uniform on [-r, r], r = gain*sqrt(6/(fan_in+fan_out)), or normal"
    )
    gain: float = param(1.0, "multiplies the Glorot scale", exclusive_min=True, min=0.0)


class Glorot(Initializer):
    """Glorot/Xavier initialization of an MLP (Glorot & Bengio 2010; Keras' default, which
    the DANTE experiments used): weights with variance 2/(fan_in + fan_out), biases zero."""

    name = "glorot"
    Params = GlorotParams
    families = ("mlp",)

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        p = self.params
        shapes = instance.model.param_shapes()
        per_trial: list[dict[str, torch.Tensor]] = []
        for g in generators:
            w: dict[str, torch.Tensor] = {}
            for name, shape in shapes.items():
                if len(shape) < 2:  # biases start at zero
                    w[name] = torch.zeros(shape, dtype=dtype)
                    continue
                fan_in, fan_out = shape[0], shape[-1]
                std = p.gain * math.sqrt(2.0 / (fan_in + fan_out))
                if p.distribution == "uniform":
                    r = std * math.sqrt(3.0)
                    w[name] = (2 * torch.rand(shape, generator=g, dtype=dtype) - 1) * r
                else:
                    w[name] = std * torch.randn(shape, generator=g, dtype=dtype)
            per_trial.append(w)
        return {name: torch.stack([w[name] for w in per_trial]) for name in shapes}
