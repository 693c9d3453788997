"""The `vahana` command line: run, server, submit, get, logs, cancel."""

INTERRUPTED = 130
"""Exit status of a command ended by Ctrl-C (a watch, a follow, a run): 128 + SIGINT, as a
shell reports a command the signal killed."""
