"""Kubernetes test tier: a real control plane (envtest), a fake kubelet and RBAC helpers."""
