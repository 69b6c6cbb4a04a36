"""The gate decides where the reasoning model may take over."""
import math

import numpy as np

from tokint_local.gate import Gate


def test_threshold_budget_position_and_entropy_limits():
    div = np.array([0.1, 2.0, 3.0, 5.0])
    ent = np.array([1.0, 0.1, 2.0, 2.0])
    pos = np.array([0, 1, 2, 3])
    assert Gate(1.0).eligible(div, ent, pos).tolist() == [False, True, True, True]
    assert Gate(1.0, max_position=3).eligible(div, ent, pos).tolist() == [False, True, True, False]
    assert Gate(1.0, min_base_entropy=0.5).eligible(div, ent, pos).tolist() == [False, False, True, True]
    assert Gate(0.0).eligible(div, ent, pos).all()


def test_infinite_threshold_never_fires_even_on_infinite_divergence():
    gate = Gate(math.inf)
    assert not gate.eligible(np.array([np.inf]), np.array([1.0]), np.array([0])).any()
    assert not gate.can_fire(0, 0)


def test_can_fire_tracks_budget_and_position():
    gate = Gate(1.0, budget=2, max_position=10)
    assert gate.can_fire(0, 0) and gate.can_fire(9, 1)
    assert not gate.can_fire(3, 2)
    assert not gate.can_fire(10, 0)
    assert Gate(1.0).can_fire(10**6, 10**6)
    assert gate.budget_left(1) == 1 and Gate(1.0).budget_left(5) is None
