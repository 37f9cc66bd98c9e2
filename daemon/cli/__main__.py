"""`python -m redisguard.daemon.cli`: the `redisguard` command, for tests and launchers that run it with a given interpreter."""

import sys

from redisguard.daemon.cli.main import main

sys.exit(main())
