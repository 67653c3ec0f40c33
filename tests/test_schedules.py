import pytest

from featinv.errors import ConfigError
from featinv.schedules import Schedule


def test_constant_and_step():
    assert Schedule.parse("constant").factor(999, 1000) == 1.0
    s = Schedule.parse("step:every=10,gamma=0.5")
    assert [s.factor(i, 30) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_exp_reaches_final_at_the_last_step():
    s = Schedule.parse("exp:final=0.01")
    assert s.factor(0, 101) == 1.0 and s.factor(100, 101) == pytest.approx(0.01)


def test_cosine_with_warmup():
    s = Schedule.parse("cosine:warmup=4,final=0.1")
    assert [s.factor(i, 20) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s.factor(19, 20) == pytest.approx(0.1)
    assert 0.1 < s.factor(12, 20) < 1.0


def test_piecewise_is_the_papers_drops():
    s = Schedule.parse("piecewise:800x1,500x0.1,500x0.01")
    assert [s.factor(i, 1800) for i in (0, 799, 800, 1299, 1300, 5000)] == [1, 1, 0.1, 0.1, 0.01, 0.01]
    assert s.total_steps() == 1800
    assert Schedule.parse(str(s)) == s


@pytest.mark.parametrize(
    "text", ["linear", "step:every=0", "step:gamma=x", "step:foo=1", "piecewise:", "piecewise:10y1", "exp:final=nan"]
)
def test_bad_schedules_are_clear_errors(text):
    with pytest.raises(ConfigError):
        Schedule.parse(text)
