"""`redisguard demo`: the whole monitor (emulator, daemon, Prometheus, Alertmanager) on loopback, and a scenario that makes it work."""
