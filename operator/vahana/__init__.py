"""Vahana: a scheduler and Kubernetes operator for shell tasks on Kubernetes, SLURM, bare metal."""

__version__ = "0.1.0"
