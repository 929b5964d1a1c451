"""cep: declarative complex-event processing for event-driven trading."""
