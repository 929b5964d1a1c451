"""The circuit breaker on a fake clock: opens after N failures in a row, refuses while open, lets
one probe through after reset_after, and that probe closes or reopens it."""
import pytest

from cep.orders.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_it_opens_after_the_threshold_of_failures_in_a_row(clock):
    breaker = CircuitBreaker(failures=3, reset_after=10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow() and not breaker.allow()
    assert breaker.refused == 2 and breaker.opened == 1


def test_after_reset_after_one_probe_goes_through_and_its_success_closes(clock):
    breaker = CircuitBreaker(failures=1, reset_after=10.0, clock=clock)
    breaker.record_failure()
    clock.now = 9.999
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_a_failed_probe_reopens_for_another_full_reset_after(clock):
    breaker = CircuitBreaker(failures=2, reset_after=5.0, clock=clock)
    breaker.record_failure(), breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and breaker.opened == 2
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.allow()


@pytest.mark.parametrize("failures, reset_after", [(0, 1.0), (1, -1.0), (1, float("nan"))])
def test_nonsense_settings_are_refused(failures, reset_after):
    with pytest.raises(ValueError):
        CircuitBreaker(failures=failures, reset_after=reset_after)
