"""Prometheus metrics of the scheduler: definitions, listeners, collectors, interceptor, endpoint.

Only `vahana.app` imports this package; it may read `vahana.scheduling` and `vahana.core`.
"""
