"""The redisguard monitor and the `redisguard` command, in subpackages by concern (docs/architecture.md is the map)."""
