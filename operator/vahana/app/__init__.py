"""Wiring: settings, the store chosen by URL, the server with its pools, the embedded runner."""
