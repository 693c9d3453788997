"""The Kubernetes operator: kopf handlers for Task and WorkerPool, mirrors of status and Workers."""
