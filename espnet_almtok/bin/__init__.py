"""Command-line tools: each parses its options and makes one call into the library."""
