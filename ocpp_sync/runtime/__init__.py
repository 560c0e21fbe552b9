"""The threaded runtime: the workers that drive one connection's protocol core, its history, and the listener."""
