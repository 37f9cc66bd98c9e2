"""The emulated Memorystore for Redis admin API: REST server, instance lifecycle, rules, records, redis-servers."""
