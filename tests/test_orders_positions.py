"""Positions netted with average cost, marked to the side one would close at; the risk manager
escalates the trading state when a loss limit is crossed."""
import pytest
from hypothesis import given, settings, strategies as st

from cep.events import Action, OrderEvent, TickEvent
from cep.orders.positions import Position, PositionBook, RiskManager
from cep.orders.risk import TradingState

DAY = 86_400 * 1_000_000_000


def quote(bid, ask, timestamp=1, instrument="X"):
    return TickEvent(timestamp, instrument, bid, ask)


def test_the_issue_example_nets_to_650_realized_and_flat():
    position = Position("X")
    position.apply(Action.BUY, 100, 50.0)
    position.apply(Action.SELL, 150, 55.0)
    assert (position.quantity, position.average_cost, position.realized) == (-50, 55.0, 500.0)
    position.apply(Action.BUY, 50, 52.0)
    assert (position.quantity, position.realized) == (0, 650.0)
    assert position.average_cost == 0.0 and position.unrealized(quote(1.0, 2.0)) == 0.0


@pytest.mark.parametrize("quantity, price", [(0, 1.0), (-1, 1.0), (1, 0.0), (1, float("nan")), (float("inf"), 1.0)])
def test_an_impossible_fill_is_refused_not_averaged_in(quantity, price):
    position = Position("X")
    with pytest.raises(ValueError):
        position.apply(Action.BUY, quantity, price)
    assert position == Position("X")


def test_adding_averages_the_cost_and_reducing_keeps_it():
    position = Position("X")
    position.apply(Action.BUY, 10, 100.0)
    position.apply(Action.BUY, 30, 104.0)
    assert position.average_cost == pytest.approx(103.0)
    position.apply(Action.SELL, 20, 110.0)
    assert (position.quantity, position.average_cost, position.realized) == (20, pytest.approx(103.0), pytest.approx(140.0))


def test_unrealized_is_marked_to_the_bid_when_long_and_the_ask_when_short():
    long, short = Position("X"), Position("X")
    long.apply(Action.BUY, 10, 100.0)
    short.apply(Action.SELL, 10, 100.0)
    market = quote(99.0, 101.0)
    assert long.unrealized(market) == pytest.approx(-10.0)   # sells at the bid
    assert short.unrealized(market) == pytest.approx(-10.0)  # buys back at the ask
    assert long.exposure(market) == pytest.approx(990.0) and short.exposure(market) == pytest.approx(1010.0)


def test_the_book_takes_fills_from_order_events_and_ignores_events_without_a_fill():
    book = PositionBook()
    fill = OrderEvent("v1", "s1", "PARTIALLY_FILLED", 2.0, 100.0, 5, client_order_id="c1", instrument="X",
                      side="BUY", quantity=5.0, fill_quantity=2.0, fill_id="f1")
    assert book.apply_event(fill)
    assert not book.apply_event(OrderEvent("v1", "s1", "ACCEPTED", 0.0, None, 4, instrument="X", side="BUY"))
    book.mark(quote(101.0, 102.0, instrument="X"))
    assert book.position("X").quantity == 2.0 and book.unrealized() == pytest.approx(2.0)
    assert book.snapshot()[0] == {"instrument": "X", "quantity": 2.0, "average_cost": 100.0, "realized": 0.0,
                                  "unrealized": pytest.approx(2.0), "exposure": pytest.approx(202.0),
                                  "mark": 101.0, "marked_at": 1}


fills = st.lists(st.tuples(st.sampled_from([Action.BUY, Action.SELL]), st.integers(1, 1000),
                           st.integers(1, 10_000)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(fills=fills, mark=st.integers(1, 10_000))
def test_realized_plus_unrealized_is_the_cash_flow_at_any_mark(fills, mark):
    position, cash, held = Position("X"), 0.0, 0
    for side, quantity, price in fills:
        position.apply(side, quantity, float(price))
        sign = 1 if side is Action.BUY else -1
        cash -= sign * quantity * price
        held += sign * quantity
    assert position.quantity == held
    total = position.realized + position.unrealized(quote(float(mark), float(mark)))
    assert total == pytest.approx(cash + held * mark, rel=1e-9, abs=1e-6)


def fill_event(side, quantity, price, timestamp, number=[0]):
    number[0] += 1
    return OrderEvent("v", "s", "FILLED", quantity, price, timestamp, client_order_id=f"c{number[0]}",
                      instrument="X", side=side, quantity=quantity, fill_quantity=quantity, fill_id="f")


def test_a_drawdown_past_its_limit_switches_to_reducing_and_a_daily_loss_to_halted():
    manager = RiskManager(max_drawdown=50.0, daily_loss_limit=80.0)
    manager.on_event(fill_event("BUY", 10, 100.0, timestamp=1))
    manager.on_quote(quote(110.0, 111.0, 2))           # equity +100: the peak
    assert manager.state is TradingState.ACTIVE and manager.peak_equity == pytest.approx(100.0)
    manager.on_quote(quote(104.0, 105.0, 3))           # drawdown 60 > 50, but up 40 on the day
    assert manager.state is TradingState.REDUCING and manager.drawdown == pytest.approx(60.0)
    manager.on_quote(quote(91.0, 92.0, 4))             # -90 on the day
    assert manager.state is TradingState.HALTED and manager.daily_pnl == pytest.approx(-90.0)
    manager.on_quote(quote(120.0, 121.0, 5))           # recovery does not lift it: a person does
    assert manager.state is TradingState.HALTED
    manager.set_state(TradingState.ACTIVE)
    assert manager.state is TradingState.ACTIVE


def test_the_daily_loss_counts_from_the_equity_at_the_start_of_the_utc_day():
    manager = RiskManager(daily_loss_limit=80.0)
    manager.on_event(fill_event("BUY", 10, 100.0, timestamp=DAY - 10))
    manager.on_quote(quote(93.0, 94.0, DAY - 5))        # -70 yesterday
    manager.on_quote(quote(90.0, 91.0, DAY + 5))        # -30 today
    assert manager.daily_pnl == pytest.approx(-30.0) and manager.state is TradingState.ACTIVE
    manager.on_quote(quote(84.0, 85.0, DAY + 6))        # -90 today
    assert manager.state is TradingState.HALTED


steps = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from("AB"), st.sampled_from([Action.BUY, Action.SELL]),
              st.integers(1, 50), st.integers(90, 110)),
    st.tuples(st.just("quote"), st.sampled_from("AB"), st.integers(90, 110))), max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps=steps)
def test_the_books_running_totals_equal_a_fresh_revaluation_whatever_the_order_of_fills_and_quotes(steps):
    book, marks = PositionBook(), {}
    for step in steps:
        if step[0] == "fill":
            book.apply_fill(step[1], step[2], step[3], float(step[4]))
        else:
            marks[step[1]] = quote(float(step[2]), float(step[2]) + 1, instrument=step[1])
            book.mark(marks[step[1]])
    assert book.realized() == pytest.approx(sum(p.realized for p in book.positions()))
    assert book.unrealized() == pytest.approx(sum(p.unrealized(marks.get(p.instrument)) for p in book.positions()))
