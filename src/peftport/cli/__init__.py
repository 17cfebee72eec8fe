"""Command line: thin shells around one library call each."""
