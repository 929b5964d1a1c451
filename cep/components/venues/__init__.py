"""Built-in venues (exchange gateways): `paper`. A broker adapter is a plugin of kind `venue`
(`cep.orders.venue` says what it implements)."""
from cep.components.venues.paper import paper_venue

__all__ = ["paper_venue"]
