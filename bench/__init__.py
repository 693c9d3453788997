"""Vahana benchmark: figures from the real scheduler, workers and gRPC."""
