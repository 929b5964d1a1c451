"""Built-in rules: ready-made strategies that turn a stream into TradingSignals."""
from cep.components.rules.momentum import momentum

__all__ = ["momentum"]
