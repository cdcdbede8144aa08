"""Trial seeds: (data, initializer, solver) seeds from plain keys.

A trial's data depends on (suite seed, problem key, trial); its initial weights also
on the initializer key; solver randomness (minibatches) on both but not on the
solver, so every solver of a comparison sees the same data, start and stream (paired
comparisons), whichever worker count or executor runs it. Each seed is
``numpy.random.SeedSequence(entropy).generate_state(2)`` folded into one integer;
:func:`trial_seeds` computes it for many trials at once with the same arithmetic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DATA, INIT, SOLVER = 0, 1, 2  # the last entropy word: which stream of the trial

# numpy.random.SeedSequence constants (numpy/random/bit_generator.pyx)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_MIN_VECTORIZED = 8  # fewer trials: the scalar path is as fast


class TrialSeeds(NamedTuple):
    """The three seeds of one trial (a tuple: ``data, init, solver = seeds``)."""

    data: int
    init: int
    solver: int


TUNING_TAG = 0x74756E65  # "tune": the entropy word that separates tuning trials' seeds


def tuning_seed(suite_seed: int) -> int:
    """The suite seed of tuning trials: derived from the suite seed with :data:`TUNING_TAG`,
    so tuning trials draw their data, starts and minibatches from streams disjoint from the
    reported trials' (which use ``suite_seed`` itself)."""
    return derive([suite_seed, TUNING_TAG])


def key_words(key: str) -> list[int]:
    """A component key (canonical JSON of name and parameters) as two 32-bit entropy words."""
    digest = hashlib.sha256(key.encode()).digest()[:8]
    return [int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")]


def derive(entropy: Sequence[int]) -> int:
    """One seed from an entropy list: the reference (scalar) SeedSequence path."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def trial_seed(suite_seed: int, problem_key: str, initializer_key: str, trial: int) -> TrialSeeds:
    """(data, init, solver) seeds of one trial, computed one SeedSequence at a time."""
    pk, ik = key_words(problem_key), key_words(initializer_key)
    return TrialSeeds(
        derive([suite_seed, *pk, trial, DATA]),
        derive([suite_seed, *pk, *ik, trial, INIT]),
        derive([suite_seed, *pk, *ik, trial, SOLVER]),
    )


def trial_seeds(
    suite_seed: int, problem_key: str, initializer_key: str, trials: Sequence[int]
) -> list[TrialSeeds]:
    """``[trial_seed(..., t) for t in trials]``, vectorized over trials.

    A SeedSequence per trial was most of the harness's per-trial cost. Falls back to the
    scalar path if the two ever disagree (a numpy that changed SeedSequence), so seeds
    never change silently.
    """
    trials = list(trials)
    if len(trials) < _MIN_VECTORIZED or max(trials) >= 2**32:
        return [trial_seed(suite_seed, problem_key, initializer_key, t) for t in trials]
    pk, ik = key_words(problem_key), key_words(initializer_key)
    data = derive_many([suite_seed, *pk], trials, DATA)
    init = derive_many([suite_seed, *pk, *ik], trials, INIT)
    solver = derive_many([suite_seed, *pk, *ik], trials, SOLVER)
    out = [TrialSeeds(*s) for s in zip(data, init, solver)]
    for i in (0, -1):
        if out[i] != trial_seed(suite_seed, problem_key, initializer_key, trials[i]):
            return [trial_seed(suite_seed, problem_key, initializer_key, t) for t in trials]
    return out


def _uint32_words(value: int) -> list[int]:
    """An int as SeedSequence splits it: little-endian 32-bit words, 0 -> [0]."""
    words = []
    while True:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            return words


def derive_many(prefix: Sequence[int], trials: Sequence[int], tag: int) -> list[int]:
    """``[derive([*prefix, t, tag]) for t in trials]`` with numpy arrays over trials.

    SeedSequence's hash constants evolve independently of the data, so every step of
    ``SeedSequence(entropy).generate_state(2)`` vectorizes; the integers are exactly
    the scalar ones (checked by :func:`trial_seeds` and by tests).
    """
    with np.errstate(over="ignore"):
        n = len(trials)
        cols = [np.full(n, w, dtype=np.uint32) for v in prefix for w in _uint32_words(v)]
        cols.append(np.asarray(trials, dtype=np.uint32))
        cols.append(np.full(n, tag, dtype=np.uint32))
        h = [np.uint32(_INIT_A)]

        def hashmix(value):
            value = value ^ h[0]
            h[0] = np.uint32(h[0] * np.uint32(_MULT_A))
            value = value * h[0]
            return value ^ (value >> np.uint32(16))

        def mix(x, y):
            r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
            return r ^ (r >> np.uint32(16))

        zero = np.zeros(n, dtype=np.uint32)
        pool = [hashmix(cols[i] if i < len(cols) else zero) for i in range(4)]
        for i_src in range(4):
            for i_dst in range(4):
                if i_src != i_dst:
                    pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src]))
        for i_src in range(4, len(cols)):
            for i_dst in range(4):
                pool[i_dst] = mix(pool[i_dst], hashmix(cols[i_src]))
        hb = np.uint32(_INIT_B)
        state = []
        for i in range(2):
            v = pool[i] ^ hb
            hb = np.uint32(hb * np.uint32(_MULT_B))
            v = v * hb
            state.append(v ^ (v >> np.uint32(16)))
    return ((state[0].astype(np.int64) << 31) ^ state[1].astype(np.int64)).tolist()
