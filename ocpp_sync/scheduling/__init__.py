"""Shared scheduling for the threads above: one deadline timer, and the turnstile that orders a server's connections."""
