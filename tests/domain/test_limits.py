"""Which queued jobs a limited claim starts (domain/limits.py): fair over keys, within limits."""

from __future__ import annotations

from jobstore.domain.limits import Candidate, EndpointLimits, Limits, Running, pick

NO_LIMITS = Limits({}, {})


def line(key: str | None, ids: range, *, endpoint: str = "/echo", priority: int = 0) -> list:
    return [Candidate(i, endpoint, key, priority, rank) for rank, i in enumerate(ids)]


def test_keys_take_turns_so_a_short_line_is_not_stuck_behind_a_long_one() -> None:
    candidates = line("A", range(1, 101)) + line("B", range(1001, 1011))
    picked = pick(candidates, free=4, running=Running(), limits=NO_LIMITS)
    assert picked.job_ids == [1, 1001, 2, 1002]


def test_within_a_round_higher_priority_then_older_goes_first() -> None:
    candidates = (
        line("A", range(1, 3)) + line("B", range(10, 12), priority=5) + line("C", range(5, 7))
    )
    picked = pick(candidates, free=3, running=Running(), limits=NO_LIMITS)
    assert picked.job_ids == [10, 1, 5]


def test_a_named_limit_counts_jobs_already_running_on_any_node() -> None:
    limits = Limits({"A": 2}, {})
    picked = pick(line("A", range(1, 10)), free=8, running=Running({"A": 1}), limits=limits)
    assert picked.job_ids == [1]
    assert picked.held_back == 8


def test_a_named_limit_wins_over_the_endpoint_limit() -> None:
    limits = Limits({"A": 3}, {"/echo": EndpointLimits(concurrency_limit=1)})
    assert pick(line("A", range(1, 10)), free=8, running=Running(), limits=limits).job_ids == [
        1,
        2,
        3,
    ]
    # without a named limit, the endpoint's per-key limit holds
    endpoint_only = Limits({}, {"/echo": EndpointLimits(concurrency_limit=1)})
    picked = pick(line("A", range(1, 10)) + line("B", range(20, 25)), free=8,
                  running=Running(), limits=endpoint_only)  # fmt: skip
    assert picked.job_ids == [1, 20]


def test_a_limit_of_zero_holds_every_job_of_the_key() -> None:
    picked = pick(line("A", range(1, 4)), free=3, running=Running(), limits=Limits({"A": 0}, {}))
    assert picked.job_ids == []
    assert picked.held_back == 3


def test_a_global_limit_caps_the_endpoint_keyed_or_not() -> None:
    limits = Limits({}, {"/echo": EndpointLimits(global_limit=3)})
    candidates = line(None, range(1, 10)) + line("A", range(20, 25)) + line("B", range(30, 35))
    picked = pick(candidates, free=8, running=Running(by_endpoint={"/echo": 1}), limits=limits)
    assert picked.job_ids == [1, 20]  # 3 minus the one already running; keys take turns
    assert picked.held_back == 17  # every other candidate: the endpoint was full
    other = pick(line(None, range(1, 5), endpoint="/other"), free=8, running=Running(),
                 limits=limits)  # fmt: skip
    assert other.job_ids == [1, 2, 3, 4]  # another endpoint is not capped


def test_never_more_than_the_free_slots() -> None:
    candidates = line("A", range(1, 50)) + line("B", range(100, 150))
    assert len(pick(candidates, free=5, running=Running(), limits=NO_LIMITS).job_ids) == 5


def test_running_rows_count_per_key_and_per_endpoint() -> None:
    running = Running.of([("A", "/echo", 2), ("A", "/sleep", 1), (None, "/echo", 4)])
    assert running.by_key == {"A": 3}
    assert running.by_endpoint == {"/echo": 6, "/sleep": 1}
