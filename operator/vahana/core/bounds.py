"""The largest value of every field a client or worker sends, and how text past one is cut.

One source for the scheduler's checks, the CLI's checks before it submits, the CRD schemas
(`tests/unit/test_bounds.py` compares them), the proto comments and the docs. Sizes of text that
goes to a process (command, environment) are UTF-8 bytes, because that is what `execve` counts;
other names are characters, as Kubernetes counts them.

Why these figures: the largest task the scheduler sends back (`get task`: output tail, message,
command, environment, labels, file lists) stays below 4 MiB, gRPC's default largest message a
client accepts, and one `bash -c <command>` with its environment stays well below what `execve`
accepts (one argument at most MAX_ARG_STRLEN, 131,072 bytes; all of them with the environment
at most ARG_MAX, 2 MiB with the usual 8 MiB stack).
"""

from __future__ import annotations

NAME_CHARS = 253
"""A task's name (a Kubernetes object name) and every id."""
NAMESPACE_CHARS = 63
POOL_CHARS = 253
ARRAY_INSTANCES = 100_000
"""Instances of one task array (`spec.array`); the CRD says the same."""
KEY_CHARS = 512
"""An idempotency key: `vahana submit` makes `<run key>/<namespace>/<name>` ones."""
COMMAND_BYTES = 65_536
"""`bash -c <command>`: half of the 131,072 bytes `execve` accepts in one argument."""
ENV_VARS = 256
ENV_NAME_CHARS = 256
ENV_VALUE_BYTES = 65_536
"""One variable's value (`execve` takes at most 131,072 bytes per `NAME=value`)."""
ENV_BYTES = 262_144
"""All of a task's `NAME=value` strings together."""
LABELS = 64
"""Entries of a task's workerSelector or preferredWorkerLabels, or of a worker's labels."""
LABEL_CHARS = 317
"""A label's key or value (a Kubernetes label key: a 253-character prefix, '/', 63 characters)."""
FILES = 128
"""Entries of a task's inputFiles or outputFiles, or of the output files a worker reports."""
PATH_BYTES = 2_048
"""A file's source or destination (a path or URL)."""
EXPERIMENT_ID_CHARS = 253
HOSTNAME_CHARS = 253
VERSION_CHARS = 64
MESSAGE_BYTES = 16_384
"""A status message or reason; a worker's longer one is cut (its start kept), not refused."""
OUTPUT_TAIL_BYTES = 1_048_576
"""The output a task leaves: the last MiB is kept (`vahana logs`)."""
REASON_CHARS = 1_024
"""A cancel reason given by a client."""
TASKS_PER_SUBMIT = 100_000
LIST_PAGE_TASKS = 1_000
"""Most tasks in one ListTasks answer; `next_page_token` leads to the rest."""
LIST_PAGE_BYTES = 3 * 1_048_576
"""A ListTasks answer stops growing past this size (it always holds one task), so it stays
below the 4 MiB a gRPC client accepts by default."""


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def head(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, its start kept and the cut said."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    note = f" … ({len(data) - limit} bytes cut)"
    kept = data[: max(0, limit - len(note.encode()))].decode("utf-8", "ignore")
    return kept + note


def tail(text: str, limit: int) -> str:
    """The last `limit` UTF-8 bytes of `text`, never a broken character."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")
