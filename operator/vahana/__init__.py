"""Vahana: a scheduler and Kubernetes operator for shell tasks on Kubernetes, SLURM and bare metal."""

__version__ = "0.1.0"
