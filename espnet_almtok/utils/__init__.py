"""Shared helpers: audio reading, atomic writes, CLI helpers, config checks, rates."""
