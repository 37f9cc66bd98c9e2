"""The redisguard monitor: config, drift engines, reports and the CLI."""
