"""Manifests: the CRD schemas, quantities and durations, and Task YAML → `Submission`.

`vahana run -f FILE` and the operator read the same objects a user would `kubectl apply`.
"""
