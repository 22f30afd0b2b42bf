"""Copy lanes' bookkeeping (engines/spirit/lanes.py): a chunk never leaves its lane, the plan
survives the checkpoint's JSON, and proving readiness again forgets every lane's checksum."""

from __future__ import annotations

from engines.spirit.lanes import Lane, LanePlan, forget_checksum


def test_a_chunk_is_capped_at_its_lane_end() -> None:
    lane = Lane(start=100, end=200)
    assert lane.cap((150,)) == ((150,), False)
    assert lane.cap((200,)) == ((200,), True)
    assert lane.cap((250,)) == ((200,), True)
    assert lane.cap(None) == ((200,), True)  # the table ends before the lane does


def test_the_last_lane_is_open_ended() -> None:
    lane = Lane(start=200, end=None)
    assert lane.cap((5000,)) == ((5000,), False)
    assert lane.cap(None) == (None, True)


def test_watermarks_start_at_the_lane_start() -> None:
    assert Lane(start=None, end=10).copy_low is None
    assert Lane(start=10, end=20).copy_low == (10,)
    assert Lane(start=10, end=20, copied=15).copy_low == (15,)
    assert Lane(start=10, end=20, copied=15, summed=12).sum_low == (12,)
    assert not Lane(start=10, end=20, copied=15, summed=12).caught_up


def test_a_plan_survives_its_json_and_forgets_its_checksum() -> None:
    plan = LanePlan(
        2,
        "copy_lanes",
        (
            Lane(None, 100, copied=100, copy_done=True, summed=100, sum_done=True, size=400),
            Lane(100, None, copied=180, summed=150, size=800),
        ),
    )
    assert LanePlan.load(plan.dump()) == plan
    forgotten = LanePlan.load(forget_checksum(plan.dump()))
    assert forgotten is not None
    assert [(ln.summed, ln.sum_done) for ln in forgotten.lanes] == [(None, False), (None, False)]
    assert [ln.copied for ln in forgotten.lanes] == [100, 180]
    assert plan.describe() == "2 copy lanes (copy_lanes), at done, 180"
    assert LanePlan.load(None) is None and forget_checksum(None) is None
