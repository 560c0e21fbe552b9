"""Simulation: a simulated charge point and central system, and the scenario language of ``ocpp-sync station``."""
