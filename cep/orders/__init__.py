"""The order half of cep: from a TradingSignal to orders, fills, a journal and positions.

Pipelines run it from their `orders:` and `venues:` sections (README "Trading"); the same core
also runs in one process from Python (`PaperDesk`). Each piece is its own module:

- `cep.orders.lifecycle`: the order state machine (`OrderLedger`), one `OrderEvent` per step;
  illegal moves, duplicate fills and overfills are refused and counted;
- `cep.orders.risk`: pre-trade checks (`PreTradeRisk`, `RiskLimits`), the `TradingState`, the
  client order id of a signal (`client_order_id_for`);
- `cep.orders.breaker`: the circuit breaker in front of the venue;
- `cep.orders.venue`: the venue adapter interface a broker plugin implements;
- `cep.orders.paper`: the paper venue's matching core (`PaperVenue`);
- `cep.orders.executor`: signal -> checks -> breaker -> venue -> events (`OrderExecutor`);
- `cep.orders.positions`: positions with average cost, the `RiskManager`;
- `cep.orders.journal` and `cep.orders.queries`: the append-only journal and what is read back
  from it (also by `cep positions JOURNAL` and `cep orders JOURNAL`);
- `cep.orders.desk`: all of the above in one process (`PaperDesk`);
- `cep.orders.settings`: what an `orders:` entry says, validated;
- `cep.orders.node` and `cep.orders.nodes`: the executor node of a pipeline, and how the
  runtime builds it and the venue node;
- `cep.orders.service`, `cep.orders.link`, `cep.orders.messages`: the venue node serving
  requests in the executor's event time, the executor's side of it, and what they say;
- `cep.orders.gauges`: how each executor stands (breaker, trading state, venue failures, its
  book marked at the last quotes), for the live status, `cep top` and the metrics;
- `cep.orders.summary`: the trading lines of `cep run`'s summary (and `--summary-json`'s `trading`).

Example: two quotes, one signal, a journal, and the position read back from the journal alone::

    >>> import tempfile, pathlib
    >>> from cep.events import TickEvent
    >>> from cep.orders import Journal, PaperDesk, PaperVenue, RiskLimits, positions_report
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "journal.db"
    >>> desk = PaperDesk(RiskLimits(max_notional=10_000, max_spread=0.001),
    ...                  venue=PaperVenue(latency_ns=2_000_000), journal=Journal(path))
    >>> _ = desk.on_quote(TickEvent(1_000_000_000, "BTCUSDT", 61837.63, 61837.64, 3.8, 1.5))
    >>> decision = desk.on_signal({"signal_id": "s1", "timestamp": 1_000_000_000, "action": "BUY",
    ...     "instrument": "BTCUSDT", "trigger_price": 61837.64, "quantity": 0.1,
    ...     "strategy_name": "manual", "confidence": 0.9})
    >>> [event.status.value for event in decision.events]
    ['NEW', 'SUBMITTED', 'ACCEPTED']
    >>> [event.status.value for event in desk.on_quote(TickEvent(1_003_000_000, "BTCUSDT", 61840.0, 61840.5, 2.0, 2.0))]
    ['FILLED']
    >>> desk.journal.close()
    >>> positions_report(path)
    [{'instrument': 'BTCUSDT', 'quantity': 0.1, 'average_cost': 61837.64, 'realized': 0.0}]

The order arrived 2 ms after it was sent and filled at the ask in force then (61837.64), not at
the later quote's.
"""
from cep.orders.breaker import BreakerState, CircuitBreaker
from cep.orders.desk import PaperDesk
from cep.orders.executor import Decision, OrderExecutor
from cep.orders.journal import Journal, read_events
from cep.orders.lifecycle import Fill, OrderLedger, Refusal
from cep.orders.paper import PaperVenue
from cep.orders.positions import Position, PositionBook, RiskManager
from cep.orders.queries import order_history, positions_at, positions_report
from cep.orders.risk import Deny, Denial, Exposure, PreTradeRisk, RiskLimits, TradingState, client_order_id_for
from cep.orders.venue import OrderRequest, OrderType, OrderUpdate, VenueAdapter, VenueReply

__all__ = ["BreakerState", "CircuitBreaker", "Decision", "Denial", "Deny", "Exposure", "Fill", "Journal",
           "OrderExecutor", "OrderLedger", "OrderRequest", "OrderType", "OrderUpdate", "PaperDesk", "PaperVenue",
           "Position", "PositionBook", "PreTradeRisk", "Refusal", "RiskLimits", "RiskManager", "TradingState",
           "VenueAdapter", "VenueReply", "client_order_id_for", "order_history", "positions_at",
           "positions_report", "read_events"]
