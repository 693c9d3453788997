"""The `vahana` command line: run, server, submit, get, logs, cancel."""
