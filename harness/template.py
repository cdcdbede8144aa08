"""``relubench new solver|problem|metric NAME``: a new installable plugin package.

The package has a ``pyproject.toml`` with the ``relubench`` entry point, one
module with the component (docstring, typed parameters) and its hook, a two-line test file that
runs the conformance checks (:mod:`harness.testing`), and a README with the
two commands to install and test it. As generated, it passes its own tests.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import InputError

KINDS = ("solver", "problem", "metric")
NAME = re.compile(r"[a-z][a-z0-9_]*")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "relubench-{dist}"
version = "0.1.0"
description = "A relubench {kind}: {name}"
requires-python = ">=3.11"
dependencies = ["relubench"]

# This line is the whole registration: relubench loads every module of this group.
[project.entry-points.relubench]
{name} = "{package}"

[tool.setuptools]
packages = ["{package}"]

[tool.ruff]
line-length = 100
"""

HOOK = """

@hookimpl
def relubench_{kind}s():
    return [{cls}]
"""

TEST = """\
from harness.testing import conformance_tests

test_conformance = conformance_tests("{package}")
"""

README = """\
# relubench-{dist}

A relubench {kind} plugin: `{name}`, in one file: `{package}/__init__.py`.

Install it next to relubench and run its conformance tests:

```bash
pip install -e .
python -m pytest tests
```

Then `relubench list {kind}s` shows `{name}` (plugin `{name}`), `relubench check {name}`
runs the same checks from the command line, and a suite uses it by name:

```toml
[[{kind}s]]
name = "{name}"
```

Without installing, load it for one command with `--plugin {package}/__init__.py`.
"""

SOLVER = '''\
"""relubench plugin {name}: gradient descent, each trial stopping on its own (a template)."""

from __future__ import annotations

from dataclasses import dataclass

from harness import (
    Instance,
    SolveContext,
    Solver,
    SolveResult,
    TrialStopper,
    Weights,
    hookimpl,
    param,
)


@dataclass(frozen=True)
class {cls}Params:
    step_size: float = param(0.1, "step eta", min=0.0, exclusive_min=True)
    max_iter: int = param(500, "maximum number of iterations", min=1)
    tol: float = param(1e-10, "a trial stops when its gradient norm is below tol", min=0.0)


class {cls}(Solver):
    """Gradient descent W <- W - eta grad L(W) on the model's training loss, each trial
    stopping on its own (cite the paper and the equation of your method here)."""

    name = "{name}"
    Params = {cls}Params
    families = ("*",)  # every model family: the model supplies loss and gradient

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        W = {{k: v.clone() for k, v in weights.items()}}  # each (B, ...): trials first
        stop = TrialStopper(instance.X.shape[0], p.max_iter, device=instance.X.device)
        for t in stop:  # t = 1 .. max_iter; ends early once every trial has stopped
            g = instance.model.grad(W, instance.X, instance.y)
            gnorm = sum(v.flatten(1).pow(2).sum(1) for v in g.values()).sqrt()  # (B,)
            # a stopped trial keeps its weights: a per-trial mask, never a batch-wide break
            W = stop.freeze({{k: v - p.step_size * g[k] for k, v in W.items()}}, W)
            stop.update(converged=gnorm <= p.tol, diverged=~gnorm.isfinite())
            if ctx.wants(t) and stop.any_ran:  # nothing past the last trial's own end
                ctx.record(t, W)
        return SolveResult(W, stop.iterations)
'''

PROBLEM = '''\
"""relubench plugin {name}: a single ReLU neuron teacher and its model (a template)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from harness import Instance, Model, Problem, Weights, batched_randn, hookimpl, param


class {cls}Model(Model):
    """f(x) = relu(w^T x), one weight vector per trial. A problem that poses an existing
    family returns that family's model instead, so the solvers of that family run on it."""

    family = "{name}"

    def __init__(self, d: int) -> None:
        self.d = d

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {{"w": (self.d,)}}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return torch.relu((X * weights["w"].unsqueeze(1)).sum(-1))  # (B, n, d) -> (B, n)


@dataclass(frozen=True)
class {cls}Params:
    d: int = param(10, "input dimension", min=1)
    n: int = param(100, "training samples per trial", min=1)
    n_test: int = param(0, "held-out test samples per trial", min=0)
    noise_std: float = param(0.0, "standard deviation of the label noise", min=0.0)


class {cls}(Problem):
    """Teacher y = relu(x^T w*) + noise with x, w* ~ N(0, I) (cite your paper here)."""

    name = "{name}"
    Params = {cls}Params
    families = ("{name}",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        model = {cls}Model(p.d)
        # trial b draws only from generators[b]: its data does not depend on the batch
        w_star = batched_randn(generators, p.d, dtype=dtype)  # (B, d)
        X = batched_randn(generators, p.n, p.d, dtype=dtype)  # (B, n, d)
        noise = batched_randn(generators, p.n, dtype=dtype)  # (B, n)
        y = model.forward({{"w": w_star}}, X) + p.noise_std * noise
        X_test = y_test = None
        if p.n_test:
            X_test = batched_randn(generators, p.n_test, p.d, dtype=dtype)
            y_test = model.forward({{"w": w_star}}, X_test)
        truth = {{"w": w_star}}
        return Instance(X=X, y=y, model=model, X_test=X_test, y_test=y_test, truth=truth)
'''

METRIC = '''\
"""relubench plugin {name}: the largest absolute training residual (a template)."""

from __future__ import annotations

import torch
from harness import Instance, Metric, SolveResult, Weights, hookimpl


class {cls}(Metric):
    """max_i |f(x_i; W) - y_i| over the training set, one number per trial."""

    name = "{name}"
    families = ("*",)
    role = "error"  # zero at the ground truth of a noiseless teacher
    direction = "lower"  # lower is better

    def applies(self, instance: Instance) -> bool:
        return instance.X.shape[1] > 0

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        r = instance.model.forward(weights, instance.X) - instance.y  # (B, n) or (B, n, c)
        return r.abs().flatten(1).amax(1)  # (B,): a reduction within each trial only
'''

SOURCES = {"solver": SOLVER, "problem": PROBLEM, "metric": METRIC}


def new_plugin(kind: str, name: str, folder: Path | str = ".") -> Path:
    """Write the package ``relubench-NAME`` for a new component under ``folder``; return
    its path. Raises :class:`InputError` for a bad kind or name or an existing folder."""
    if kind not in KINDS:
        raise InputError(f"relubench new {kind}: the kind is one of {', '.join(KINDS)}")
    if not NAME.fullmatch(name):
        raise InputError(
            f"relubench new {kind} {name}: a name is lowercase letters, digits and _, "
            "starting with a letter (it is what suites write)"
        )
    dist = name.replace("_", "-")
    package = f"relubench_{name}"
    cls = "".join(part.capitalize() for part in name.split("_"))
    root = Path(folder) / f"relubench-{dist}"
    if root.exists():
        raise InputError(f"relubench new {kind} {name}: {root} exists already")
    fields = {
        "kind": kind,
        "name": name,
        "dist": dist,
        "package": package,
        "cls": cls,
        "title": f"relubench {kind} {name}",
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": SOURCES[kind] + HOOK,
        f"tests/test_{name}.py": TEST,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**fields))
    return root
