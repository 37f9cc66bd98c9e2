"""`python -m redisguard.emulator ...` is `redisguard emulator ...`."""

import sys

from redisguard.daemon.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
