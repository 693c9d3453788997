"""Pure scheduling logic: models, queue, matching, leases, retries. No I/O, no gRPC, no SQL."""
