"""The `redisguard` command: argv to a handler, one module per command family; output and interrupts handled once."""
