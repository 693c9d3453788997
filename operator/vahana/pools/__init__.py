"""Pool adapters: start and stop workers where the compute is. They translate, never schedule."""
