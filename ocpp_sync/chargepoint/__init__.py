"""The charge point side: ``ChargePoint``, and the durable offline queue that carries its transaction messages."""
