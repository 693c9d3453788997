"""Whether a worker can take a task (capacity, labels, walltime), and how well it is placed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vahana.core import models


def free_capacity(
    worker: models.WorkerRecord, held: Iterable[models.Resources]
) -> models.Resources:
    """The worker's capacity minus what the tasks it holds asked for."""
    cpu, memory, gpus = (
        worker.capacity.cpu_cores,
        worker.capacity.memory_bytes,
        worker.capacity.gpus,
    )
    for need in held:
        cpu -= need.cpu_cores
        memory -= need.memory_bytes
        gpus -= need.gpus
    return models.Resources(cpu, memory, gpus, worker.capacity.labels)


def labels_match(required: Mapping[str, str], offered: Mapping[str, str]) -> bool:
    return all(offered.get(key) == value for key, value in required.items())


def could_ever_fit(need: models.Resources, worker: models.WorkerRecord) -> bool:
    """True if the idle worker could run the task: the capacity test without current load."""
    return fits_capacity(need, worker.capacity)


def fits_capacity(need: models.Resources, offer: models.Resources) -> bool:
    """True if a worker offering `offer` could run a task needing `need` when idle."""
    return (
        _within(need.cpu_cores, offer.cpu_cores)
        and _within(need.memory_bytes, offer.memory_bytes)
        and need.gpus <= offer.gpus
        and labels_match(need.labels, offer.labels)
    )


def fits_now(need: models.Resources, free: models.Resources, worker: models.WorkerRecord) -> bool:
    """True if the task fits in what the worker has left (`free`, from `free_capacity`).

    Only a dimension the worker declares limits: free cpu or memory of 0 on a worker that
    declared some is full, not "unknown".
    """
    declared = worker.capacity
    return (
        _within_free(need.cpu_cores, free.cpu_cores, declared.cpu_cores)
        and _within_free(need.memory_bytes, free.memory_bytes, declared.memory_bytes)
        and need.gpus <= free.gpus
        and labels_match(need.labels, free.labels)
    )


def outlives_allocation(timeout_seconds: float, worker: models.WorkerRecord, now: float) -> bool:
    """True if a task with this timeout could still be running when the worker's allocation ends."""
    if worker.allocation_ends_at is None or timeout_seconds <= 0:
        return False
    return now + timeout_seconds > worker.allocation_ends_at


def locality_rank(preferred: Mapping[str, str], offered: Mapping[str, str]) -> int:
    """How many preferred labels the worker offers; higher is a better place for the task."""
    return sum(1 for key, value in preferred.items() if offered.get(key) == value)


def _within(need: float, offer: float) -> bool:
    # A worker that declares no amount (0) of cpu or memory is not limited by it: the seed's
    # workers report what the host has, but a capacity of 0 means "unknown", not "none".
    return need <= 0 or offer <= 0 or need <= offer + 1e-9


def _within_free(need: float, free: float, declared: float) -> bool:
    return need <= 0 or declared <= 0 or need <= free + 1e-9
