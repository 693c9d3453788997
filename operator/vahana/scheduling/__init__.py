"""The scheduler service: applies the core's decisions to live state and the store."""
