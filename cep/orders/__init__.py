"""The order half of cep: from a TradingSignal to orders, fills and positions.

- `lifecycle`: the order state machine (`OrderLedger`), one `OrderEvent` per step;
- `risk`: pre-trade checks (`PreTradeRisk`), the trading state, client order ids;
- `breaker`: the circuit breaker on the path to the venue.
"""
