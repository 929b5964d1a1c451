"""Built-in rules: ready-made strategies that turn a stream into TradingSignals."""
from cep.components.rules.momentum import momentum

__all__ = ["momentum"]
from cep.components.rules.support_resistance import support_resistance  # noqa: E402

__all__ += ["support_resistance"]
