"""Permutation matching of hidden units (Hungarian algorithm), batched over trials."""

from __future__ import annotations

import numpy as np
import torch


def match_columns(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """For each trial, the permutation of W's columns closest to W_star's.

    Returns ``perm`` (B, k) such that ``W[b, :, perm[b]]`` minimises
    ``||W[b][:, perm] - W_star[b]||_F`` over all permutations (a linear
    assignment on the squared column distances). Non-finite weights get the
    identity permutation.
    """
    # (B, k, k): cost[b, i, j] = ||w_i - w*_j||^2 for unit i of W and unit j of W*.
    cost = torch.cdist(W.transpose(1, 2), W_star.transpose(1, 2)).pow(2).cpu().numpy()
    B, k, _ = cost.shape
    perm = np.tile(np.arange(k), (B, 1))
    if k > 1:
        # Imported here: scipy.optimize takes ~0.5 s to import, and every process that
        # loads the plugins (the driver, each worker) would pay it even for k = 1.
        from scipy.optimize import linear_sum_assignment
    for b in range(B):
        if k > 1 and np.isfinite(cost[b]).all():
            rows, cols = linear_sum_assignment(cost[b])
            perm[b, cols] = rows  # column j of W* is matched by unit rows[j] of W
    return torch.as_tensor(perm, device=W.device)


def permute_columns(W: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``W[b][:, perm[b]]`` for every trial b."""
    index = perm.unsqueeze(1).expand(-1, W.shape[1], -1)
    return torch.gather(W, 2, index)
