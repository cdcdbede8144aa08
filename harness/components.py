"""Base classes of the four component kinds, their typed parameters, and the data they exchange.

A component is a small class: a ``name``, a ``Params`` dataclass whose fields
are the parameters a suite may set (with defaults), the model families it
supports, and one method that does the work:

* :class:`Problem` samples an :class:`Instance` (data, ground truth, student model)
  for a batch of trials;
* :class:`Initializer` returns the starting weights for each trial;
* :class:`Solver` trains the student from those weights;
* :class:`Metric` scores the final weights, one number per trial.

Every tensor carries the trial dimension first (``B >= 1``). Trials must stay
independent: batched code may never mix numbers across the leading dimension.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import inspect
import linecache
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from harness.errors import did_you_mean

Weights = dict[str, torch.Tensor]
"""Named weight tensors, each with the trial dimension first."""

ANY_FAMILY = "*"

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integer parameters must fit a 64-bit column (Parquet ``int64``) and a torch size."""


class ParameterError(ValueError):
    """A parameter value a component cannot take; ``key`` names the parameter."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def param(
    default: Any,
    doc: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    exclusive_min: bool = False,
) -> Any:
    """Declare one parameter of a component's ``Params`` dataclass.

    ``min``/``max`` bound numbers (``exclusive_min`` makes the lower bound strict);
    ``choices`` restricts the value to a fixed set (``Literal`` types do this too).
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "exclusive_min": exclusive_min}
    if isinstance(default, (list, dict, set)):
        # Each instance gets its own copy: one shared mutable default would
        # carry one instance's edits into every other.
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoParams:
    """Parameters of a component that takes none."""


@dataclass(frozen=True)
class ParamSpec:
    """What ``relubench show`` prints of one parameter."""

    name: str
    type: str
    default: Any
    doc: str
    allowed: str


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


@functools.cache
def _type_hints(params_cls: type) -> dict[str, Any]:
    """A ``Params`` class's resolved annotations (resolving them costs 0.4 ms a call,
    once per grid point of a large suite otherwise)."""
    return typing.get_type_hints(params_cls)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in its canonical form."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or type(value) is not type(allowed[0]):
            raise ParameterError(key, f"{value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(option, value, key)
            except ParameterError:
                continue
        raise ParameterError(key, f"{value!r} is not a {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ParameterError(key, f"{value!r} is not none")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(key, f"{value!r} is not a boolean (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise ParameterError(
                    key, f"{value!r} is out of range (a 64-bit integer, |value| < 2**63)"
                )
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            # 10.0 is a float in TOML: a float where an integer belongs is a typo or a
            # computed value, and silently truncating the next one (10.5) would be worse.
            raise ParameterError(
                key, f"{value!r} is not an integer (write {int(value)}, without a decimal point)"
            )
        raise ParameterError(key, f"{value!r} is not an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise ParameterError(key, f"{value!r} is not a finite number")
            return number
        raise ParameterError(key, f"{value!r} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ParameterError(key, f"{value!r} is not a string")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParameterError(key, f"{value!r} is not a list")
        (inner,) = typing.get_args(tp)[:1] or (Any,)
        return tuple(_coerce(inner, v, key) for v in value)
    if tp is Any:
        return value
    raise TypeError(f"unsupported parameter type {tp!r} for {key!r}")


class Component:
    """Common base: a name, typed parameters, supported model families, a version.

    Subclasses set ``name`` (lowercase, unique within their kind), ``Params``
    (a frozen dataclass built with :func:`param`) and ``families`` (model
    families this component works with; ``("*",)`` for all). The class
    docstring is what ``relubench show`` prints: cite the paper and equation.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    families: ClassVar[tuple[str, ...]] = (ANY_FAMILY,)

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()

    # -- parameters ---------------------------------------------------------
    @classmethod
    def param_specs(cls) -> list[ParamSpec]:
        if cls.Params not in _SPECS:  # once per Params class: expansion asks per cell
            _SPECS[cls.Params] = cls._param_specs()
        return list(_SPECS[cls.Params])

    @classmethod
    def _param_specs(cls) -> tuple[ParamSpec, ...]:
        hints = _type_hints(cls.Params)
        specs = []
        for f in dataclasses.fields(cls.Params):
            meta = f.metadata
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            specs.append(
                ParamSpec(
                    f.name, _type_name(hints[f.name]), default, meta.get("doc", ""), _allowed(meta)
                )
            )
        return tuple(specs)

    @classmethod
    def make_params(cls, values: dict[str, Any], *, cross_check: bool = True) -> Any:
        """Validate a dict of raw values (from TOML) and build the ``Params`` instance.

        Raises :class:`ParameterError` naming the offending key and what is allowed.
        ``cross_check=False`` skips :meth:`check_params` (used to validate one grid
        value on its own before the full combinations exist).
        """
        hints = _type_hints(cls.Params)
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            allowed = ", ".join(sorted(fields)) or "none"
            raise ParameterError(
                unknown[0],
                f"unknown parameter {unknown[0]!r}{did_you_mean(unknown[0], fields)} for "
                f"{cls.kind} {cls.name!r}; allowed: {allowed}",
            )
        clean = {}
        for key, value in values.items():
            meta = fields[key].metadata
            try:
                v = _coerce(hints[key], value, key)
            except ParameterError as exc:
                raise ParameterError(
                    key, f"{cls.kind} {cls.name!r} parameter {key!r}: {exc.message}"
                ) from None
            _check_bounds(cls, key, v, meta)
            clean[key] = v
        params = cls.Params(**clean)
        problem = cls.check_params(params) if cross_check else None
        if problem:
            raise ParameterError(problem[0], f"{cls.kind} {cls.name!r}: {problem[1]}")
        return params

    @classmethod
    def check_params(cls, params: Any) -> tuple[str, str] | None:
        """Cross-parameter validation; return ``(key, message)`` for a bad combination."""
        return None

    @classmethod
    def source_version(cls) -> str:
        """A short hash of this class's source (its base classes' and ``Params`` too).

        Part of every cell id, with the plugin's distribution version (added by
        the suite from the registry), so editing a component invalidates only
        its own cached results. Computed once per class and process: the source is read
        through ``sys.modules``, which a host may later change.
        """
        if cls not in _VERSIONS:
            _VERSIONS[cls] = cls._compute_source_version()
        return _VERSIONS[cls]

    @classmethod
    def _compute_source_version(cls) -> str:
        h = hashlib.sha256()
        own = [
            k
            for k in cls.__mro__
            if k not in (Component, Problem, Initializer, Solver, Metric, object)
        ]
        files = tuple(dict.fromkeys(f for k in own for f, _ in _code_lines(k)))
        for klass in own:
            h.update(class_source(klass, files).encode())
        if cls.Params is not NoParams:
            # Inherited parameter fields (``DanteSGDParams(DanteParams)``) are part of
            # the parameters too: a change to the parent must change the cell id.
            for klass in cls.Params.__mro__:
                if klass is not object:
                    h.update(class_source(klass, files).encode())
        return h.hexdigest()[:12]

    @classmethod
    def supports(cls, family: str) -> bool:
        return ANY_FAMILY in cls.families or family in cls.families


_SPECS: dict[type, tuple[ParamSpec, ...]] = {}


@functools.cache
def _type_hints(params_cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a ``Params`` class, resolved once (it evaluates every
    annotation's text: most of the time of expanding a large suite)."""
    return typing.get_type_hints(params_cls)


def _allowed(meta: Any) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of " + ", ".join(map(repr, meta["choices"])))
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None:
        parts.append(f"{'>' if meta.get('exclusive_min') else '>='} {lo}")
    if hi is not None:
        parts.append(f"<= {hi}")
    return ", ".join(parts)


def _check_bounds(cls: type[Component], key: str, value: Any, meta: Any) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ParameterError(
            key,
            f"{cls.kind} {cls.name!r} parameter {key!r}: {value!r} is not one of "
            + ", ".join(map(repr, choices)),
        )
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        too_low = lo is not None and (value <= lo if meta.get("exclusive_min") else value < lo)
        if too_low or (hi is not None and value > hi):
            raise ParameterError(
                key,
                f"{cls.kind} {cls.name!r} parameter {key!r}: {value!r} must be {_allowed(meta)}",
            )


def _code_lines(klass: type) -> list[tuple[str, int]]:
    """(file, first line) of the class's own Python functions defined in real files."""
    out = []
    for value in vars(klass).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None and not code.co_filename.startswith("<"):
            out.append((code.co_filename, code.co_firstlineno))
    return out


def _classes_named(tree: ast.AST, path: list[str]) -> list[ast.ClassDef]:
    """Class definitions whose nesting matches a ``__qualname__`` path (``A.Params``)."""
    if "<locals>" in path:  # defined in a function: match the innermost name anywhere
        return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == path[-1]]
    nodes: list[ast.AST] = [tree]
    for name in path:
        nodes = [
            child
            for node in nodes
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.ClassDef) and child.name == name
        ]
    return nodes  # type: ignore[return-value]


def class_source(klass: type, files: tuple[str, ...] = ()) -> str:
    """The source text of a class, found from code objects rather than ``sys.modules``.

    ``inspect.getsource`` looks a class up through ``sys.modules``, which a host
    may have changed since the class was imported (pytest's pytester drops the
    modules it imported). A method's ``co_filename`` still points at the file;
    a class without methods of its own (a ``Params`` dataclass) is looked up by
    name in ``files`` (its component's files). Falls back to ``inspect``, then
    to the qualified name.
    """
    own = _code_lines(klass)
    candidates = [(f, line) for f, line in own[:1]] + [(f, None) for f in files]
    for filename, lineno in candidates:
        text = "".join(linecache.getlines(filename))
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in _classes_named(tree, klass.__qualname__.split(".")):
            end = node.end_lineno or node.lineno
            if lineno is None or node.lineno <= lineno <= end:
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                return "".join(text.splitlines(keepends=True)[start - 1 : end])
    try:
        return inspect.getsource(klass)
    except (OSError, TypeError):
        return klass.__qualname__


_VERSIONS: dict[type, str] = {}


# ---------------------------------------------------------------------------
# Data exchanged between components
# ---------------------------------------------------------------------------


class Model:
    """The student architecture a problem poses: how weights map inputs to outputs.

    Subclasses set ``family`` and implement :meth:`forward` and :meth:`param_shapes`.
    The default :meth:`loss` is the squared loss (1/2n) sum_i (f(x_i) - y_i)^2 per trial.
    """

    family: str = ""

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        """Outputs for inputs ``X`` (B, n, d): (B, n) or (B, n, c)."""
        raise NotImplementedError

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each named weight tensor, without the trial dimension."""
        raise NotImplementedError

    def align(self, weights: Weights, truth: dict[str, torch.Tensor]) -> Weights:
        """``weights`` with hidden units reordered to best match ``truth``.

        The default changes nothing; models with interchangeable hidden units
        override it (e.g. a permutation found by Hungarian matching).
        """
        return weights

    def recovery_view(self, weights: Weights) -> Weights:
        """The weights on which recovery is measured (e.g. effective weights W + I_S)."""
        return weights

    def select(self, index: Any) -> Model:
        """The model for a sub-batch of trials (override if the model holds per-trial data)."""
        return self

    def to(self, device: Any) -> Model:
        """The model on ``device`` (override if the model holds tensors)."""
        return self

    def loss(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-trial training objective, shape (B,)."""
        r = self.forward(weights, X) - y
        return 0.5 * r.reshape(r.shape[0], -1).pow(2).sum(1) / X.shape[1]

    def grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> Weights:
        """Gradient of :meth:`loss` for each weight tensor (autograd unless overridden).

        Trials are independent, so the gradient of the summed per-trial losses
        is each trial's own gradient.
        """
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
            total = self.loss(leaves, X, y).sum()
            grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
        return {
            k: (g if g is not None else torch.zeros_like(v))
            for (k, v), g in zip(leaves.items(), grads)
        }


@dataclass
class Instance:
    """What a problem samples for a batch of B trials.

    ``truth`` holds named ground-truth tensors (e.g. ``W_star``), ``extras``
    anything else a solver may legitimately know (e.g. a skip support ``S``).
    ``seeds`` are the per-trial seeds the data came from.
    """

    X: torch.Tensor
    y: torch.Tensor
    model: Model
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    truth: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.X.shape[0]

    def select(self, index: torch.Tensor | slice | list[int]) -> Instance:
        """The sub-batch of trials ``index`` (tensors sliced along dim 0)."""

        def pick(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == self.batch:
                return v[index]
            return v

        return Instance(
            X=self.X[index],
            y=self.y[index],
            model=self.model.select(index),
            X_test=pick(self.X_test),
            y_test=pick(self.y_test),
            truth={k: pick(v) for k, v in self.truth.items()},
            extras={k: pick(v) for k, v in self.extras.items()},
        )

    def to(self, device: torch.device | str) -> Instance:
        def mv(v: Any) -> Any:
            return v.to(device) if isinstance(v, torch.Tensor) else v

        return Instance(
            mv(self.X),
            mv(self.y),
            self.model.to(device),
            mv(self.X_test),
            mv(self.y_test),
            {k: mv(v) for k, v in self.truth.items()},
            {k: mv(v) for k, v in self.extras.items()},
        )


@dataclass
class SolveResult:
    """What a solver returns: final weights and per-trial iteration counts.

    ``status`` may mark trials the solver itself knows went wrong
    (``"diverged"``); the runner also marks any trial whose weights or loss are
    not finite. ``info`` holds extra per-trial numbers stored as metrics.
    """

    weights: Weights
    iterations: torch.Tensor
    status: list[str] | None = None
    info: dict[str, torch.Tensor] = field(default_factory=dict)


class SolveContext:
    """What the runner hands a solver besides the data: device, dtype, randomness, tracing.

    ``record(iteration, weights, **values)`` reports an iterate; the runner
    decides from the suite's trace schedule whether to keep it, evaluates the
    trace metrics on it with the solver clock paused (evaluation is not
    charged to the solver), and stores long-format rows. ``values`` are extra
    per-trial quantities the solver already has, such as the running totals of
    the budget axes it declares in :attr:`Solver.budget_axes`.
    """

    def __init__(
        self,
        *,
        device: torch.device,
        dtype: torch.dtype,
        generators: list[torch.Generator],
        recorder: Callable[[int, Weights, dict[str, Any]], None] | None = None,
        wants: Callable[[int], bool] | None = None,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.generators = generators
        self._recorder = recorder
        self._wants = wants

    def wants(self, iteration: int) -> bool:
        """Whether :meth:`record` would keep this iteration (lets solvers skip work)."""
        return self._recorder is not None and (self._wants is None or self._wants(iteration))

    def record(self, iteration: int, weights: Weights, **values: Any) -> None:
        if self.wants(iteration):
            self._recorder(iteration, weights, values)  # type: ignore[misc]


class Problem(Component):
    """A teacher model or dataset: samples an :class:`Instance` for a batch of trials.

    ``sample`` receives one ``torch.Generator`` per trial, seeded from the
    (suite seed, problem key, trial) triple; drawing each trial's data from its
    own generator keeps the data of a trial the same whatever batch it is in.
    """

    kind = "problem"

    def family(self) -> str:
        """The model family of the student this problem poses (may depend on params)."""
        return self.families[0]

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        raise NotImplementedError


class Initializer(Component):
    """Starting weights for each trial of an instance."""

    kind = "initializer"

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        raise NotImplementedError


class Solver(Component):
    """A training algorithm. Batched solvers treat the leading dimension as independent trials.

    Set ``batched = False`` for a solver that handles one trial at a time; the
    runner then calls :meth:`solve` once per trial with B = 1.
    """

    kind = "solver"
    batched: ClassVar[bool] = True
    budget_axes: ClassVar[tuple[str, ...]] = ()
    """Budget axes this solver records itself, beside iteration and solver time.

    Each is a per-trial running total (``weights_updated``, ``samples``) the
    solver passes to ``ctx.record(iteration, weights, name=value)`` and returns
    in ``SolveResult.info``; the report draws the traced metrics against it.
    Iteration and solver time (``time_s``) are axes of every solver.
    """

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        raise NotImplementedError

    def skip(self, problem: Problem, initializer: Initializer) -> str | None:
        """A reason not to run this combination (beyond model families), or None."""
        return None

    @classmethod
    def batch_invariant(
        cls, params: Any, problem: dict[str, Any], *, dtype: str, device: str
    ) -> bool:
        """Whether a trial's numbers are the same bit for bit whatever other trials share
        its batch (each trial runs its own kernels), for these solver ``params``, the
        problem's parameter values, ``dtype`` and ``device``.

        When a run has fewer cells to run than workers, such a cell is split into chunks
        of trials that run on several workers at once (harness/run.py). Default False:
        batched linear algebra may round a trial differently in batches of other sizes.
        """
        return False


METRIC_ROLES: dict[str, str] = {
    "success": "a per-trial outcome in [0, 1] (1 = recovered); success rates and phase "
    "transitions are drawn from it",
    "error": "how far the learned model is from the target: a recovery error against the "
    "ground truth or an error on held-out data; the run summary shows the first one a suite "
    "names",
    "loss": "the training objective the solver minimises",
    "score": "any other number (an accuracy, a diagnostic quantity)",
}
"""The roles a metric may declare, and what each means to the summary and the report."""

DIRECTIONS = ("lower", "higher")
"""Which way a metric improves: ``lower`` or ``higher`` is better."""

ROLE_DIRECTIONS = {"success": "higher", "error": "lower", "loss": "lower", "score": "higher"}
"""The direction a metric has when it declares a role but no direction."""


class Metric(Component):
    """A final score, one number per trial (NaN where it does not apply).

    The runner calls :meth:`compute` only for instances where :meth:`applies` holds
    (final scores and traced iterates alike) and records no value for the others
    (NaN in the runs table), so ``compute`` need not repeat that check.

    ``role`` (one of :data:`METRIC_ROLES`) and ``direction`` (``"lower"`` or
    ``"higher"`` is better; ``None`` takes the role's usual direction from
    :data:`ROLE_DIRECTIONS`) tell the summary and the report what the number is,
    so they need not know metric names. Both are recorded in every results file.
    """

    kind = "metric"
    role: ClassVar[str] = "score"
    direction: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        where = f"metric class {cls.__module__}.{cls.__qualname__}"
        if cls.role not in METRIC_ROLES:
            raise TypeError(
                f"{where}: role {cls.role!r} is not one of {', '.join(map(repr, METRIC_ROLES))}"
            )
        if cls.direction is not None and cls.direction not in DIRECTIONS:
            raise TypeError(
                f"{where}: direction {cls.direction!r} is not one of "
                f"{', '.join(map(repr, DIRECTIONS))} (or None for the role's default)"
            )

    @classmethod
    def better(cls) -> str:
        """``"lower"`` or ``"higher"``: the declared direction, else the role's default."""
        return cls.direction or ROLE_DIRECTIONS[cls.role]

    def applies(self, instance: Instance) -> bool:
        """Whether this metric can be computed for this instance (e.g. it has a ground truth)."""
        return True

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        raise NotImplementedError


KINDS: dict[str, type[Component]] = {
    "problem": Problem,
    "initializer": Initializer,
    "solver": Solver,
    "metric": Metric,
}


def batched_randn(
    generators: list[torch.Generator], *shape: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """One standard normal draw of ``shape`` per trial generator, stacked to (B, *shape)."""
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in generators])


def batched_rand(
    generators: list[torch.Generator], *shape: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """One U[0, 1) draw of ``shape`` per trial generator, stacked to (B, *shape)."""
    return torch.stack([torch.rand(shape, generator=g, dtype=dtype) for g in generators])
