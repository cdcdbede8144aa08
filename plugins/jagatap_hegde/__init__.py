"""Jagatap & Hegde: alternating minimization for shallow ReLU networks."""

from harness import hookimpl
from plugins.jagatap_hegde.altmin import AltMin
from plugins.jagatap_hegde.altmin2 import AltMin2
from plugins.jagatap_hegde.initializers import EffectiveGaussian, Identity
from plugins.jagatap_hegde.problems import SkipOneHidden, TwoHidden


@hookimpl
def relubench_problems():
    return [SkipOneHidden, TwoHidden]


@hookimpl
def relubench_initializers():
    return [Identity, EffectiveGaussian]


@hookimpl
def relubench_solvers():
    return [AltMin, AltMin2]
