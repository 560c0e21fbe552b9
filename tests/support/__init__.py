"""Helpers the tests share: raw peers, fault proxies, subprocesses, schemas."""
