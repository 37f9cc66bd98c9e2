"""The shared core of redisguard: what every part imports (errors, processes, secrets, Memorystore facts, validation, Google API clients)."""
