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


def flat_epoch_batches(
    generators: list[torch.Generator], n: int, batch_size: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """The minibatches of :func:`epoch_batches` (same permutations, same order) as flat row
    numbers ``trial * n + sample`` (B*b,) into :func:`flatten_trials`' rows, for :func:`take`.

    The offsets are added once per epoch: one ``index_select`` per minibatch then replaces
    advanced indexing with a (B, 1) row index (about half the time per step).
    """
    perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)  # (B, n)
    flat = perm + n * torch.arange(perm.shape[0], device=device).unsqueeze(1)
    for start in range(0, n, batch_size):
        yield flat[:, start : start + batch_size].reshape(-1)


def flatten_trials(T: torch.Tensor) -> torch.Tensor:
    """``T`` (B, n, ...) as (B*n, ...) rows for :func:`take`; done once per training set,
    since a non-contiguous ``T`` is copied here."""
    return T.reshape(T.shape[0] * T.shape[1], *T.shape[2:])


def take(flat: torch.Tensor, flat_idx: torch.Tensor, B: int) -> torch.Tensor:
    """Rows ``flat_idx`` (from :func:`flat_epoch_batches`) of ``flat`` (from
    :func:`flatten_trials`) -> (B, b, ...): the values ``gather`` gives with the (B, b) indices."""
    return flat.index_select(0, flat_idx).view(B, -1, *flat.shape[1:])


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


def sole_owner(t: torch.Tensor, among: list[torch.Tensor]) -> bool:
    """Whether no other tensor of ``among`` shares ``t``'s memory, so a step may overwrite
    ``t`` (a gradient fresh from autograd) without changing another one."""
    ptr = t.untyped_storage().data_ptr()
    return sum(1 for u in among if u.untyped_storage().data_ptr() == ptr) <= 1
