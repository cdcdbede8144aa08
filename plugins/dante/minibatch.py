"""Per-trial minibatch order shared by the DANTE and backprop solvers.

Each trial shuffles its own training set with its own generator, so a trial's
minibatches do not depend on which other trials share the batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def epoch_batches(
    generators: list[torch.Generator], n: int, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """One epoch: the (B, b) sample indices of each minibatch, a fresh permutation per trial.

    The last minibatch is smaller when ``batch_size`` does not divide ``n``.
    """
    perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)  # (B, n)
    for start in range(0, n, batch_size):
        yield perm[:, start : start + batch_size]


def gather(T: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, b) of each trial's ``T`` (B, n, ...) -> (B, b, ...)."""
    rows = torch.arange(T.shape[0], device=T.device).unsqueeze(1)
    return T[rows, idx]


def per_trial_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of each trial's concatenated tensors, shape (B,)."""
    sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in tensors)
    return torch.sqrt(sq)  # type: ignore[arg-type]


def expand_like(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A (B,) tensor shaped to broadcast against ``t`` (B, ...)."""
    return v.reshape(v.shape[0], *([1] * (t.dim() - 1))).to(t.dtype)
