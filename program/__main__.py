"""Pulumi entry point of the redis-fleet program; the logic lives in redisguard.program.fleet."""

from redisguard.program.fleet import main

main()
