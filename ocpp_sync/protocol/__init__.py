"""The sans-IO protocol core: versions, schema facts, the codec, OCPP-J frames and RPC rules.

Nothing here touches a socket, a clock it was not handed, or a thread: text goes
in, events come out, and every OCPP rule is decided in one of these modules, so
it can be read and tested without a network. The threaded runtime drives it.
"""
