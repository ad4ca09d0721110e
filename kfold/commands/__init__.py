"""Command lines: each parses its flags, calls one library function and prints."""
