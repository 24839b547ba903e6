import pytest

from clstudio.engine import metrics

# A hand-made 3-task run: task 0 drops from .9 to .6, task 1 from .8 to .7.
R = [
    [0.9, None, None],
    [0.8, 0.8, None],
    [0.6, 0.7, 0.5],
]


def test_acc():
    assert metrics.acc(R) == pytest.approx((0.6 + 0.7 + 0.5) / 3)


def test_aia():
    assert metrics.aia(R) == pytest.approx((0.9 + (0.8 + 0.8) / 2 + (0.6 + 0.7 + 0.5) / 3) / 3)


def test_bwt():
    assert metrics.bwt(R) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)


def test_forgetting_uses_max_over_earlier_rows():
    # task 0: max(.9, .8) - .6 = .3 ; task 1: max(.8) - .7 = .1
    assert metrics.forgetting(R) == pytest.approx((0.3 + 0.1) / 2)


def test_forgetting_differs_from_bwt_when_accuracy_rises_then_falls():
    up_down = [[0.5, None, None], [0.9, 0.8, None], [0.7, 0.8, 0.6]]
    assert metrics.bwt(up_down) == pytest.approx(((0.7 - 0.5) + (0.8 - 0.8)) / 2)  # +0.1: looks like gain
    assert metrics.forgetting(up_down) == pytest.approx(((0.9 - 0.7) + 0.0) / 2)  # 0.1 forgotten


def test_fwt_needs_above_diagonal_entries_and_baselines():
    full = [[0.9, 0.4], [0.8, 0.9]]
    assert metrics.fwt(full, [0.5, 0.3]) == pytest.approx(0.4 - 0.3)
    assert metrics.fwt([[0.9, None], [0.8, 0.9]], [0.5, 0.3]) is None


def test_single_task_and_empty():
    assert metrics.acc([[0.7]]) == pytest.approx(0.7)
    assert metrics.bwt([[0.7]]) is None and metrics.forgetting([[0.7]]) is None
    assert metrics.acc([]) is None


def test_zero_forgetting_matrix():
    constant = [[0.8, None], [0.8, 0.9]]
    assert metrics.bwt(constant) == 0.0 and metrics.forgetting(constant) == 0.0


def test_undefined_lower_triangle_rejected():
    with pytest.raises(ValueError):
        metrics.acc([[0.9, None], [None, 0.8]])


def test_near_chance_is_two_standard_errors_above_guessing():
    # 2 classes, 100 images: chance 50 %, SE 5 %: below 60 % is near chance
    assert metrics.near_chance(0.59, 2, 100) and not metrics.near_chance(0.61, 2, 100)
    # 10 classes, 30 images: 10 % + 2·√(0.09/30) = 20.95 %
    assert metrics.near_chance(0.20, 10, 30) and not metrics.near_chance(0.22, 10, 30)
    assert metrics.near_chance(1.0, 3, 0)  # no images: nothing is measured


def test_every_metric_has_its_formula():
    for name, doc in metrics.FORMULAS.items():
        assert doc and "=" in doc, name
