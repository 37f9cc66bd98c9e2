"""The checks: the protocol, the registry every consumer reads, and the drift and memory checks (with ignore rules and CLI supervision)."""
