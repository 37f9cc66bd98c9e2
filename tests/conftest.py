"""Shared pytest setup: each part's fixtures live in tests/fixtures/ and are loaded here."""

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.emulator",
    "tests.fixtures.analyzer",
    "tests.fixtures.daemon",
    "tests.fixtures.browser",
    "tests.fixtures.pulumi_engine",
    "tests.fixtures.pulumi_cli",
]
