"""Findings turned into reviewed changes: codify, adopt and the memory recommendation."""
