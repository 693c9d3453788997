"""Log lines are key=value pairs with the worker id."""

import logging

from vahana_worker import logs


def test_formatter_writes_key_value_pairs() -> None:
    record = logging.LogRecord(
        "vahana_worker.agent", logging.INFO, __file__, 1, "task finished", None, None
    )
    record.kv = {"task_id": "t-1", "attempt": 2, "message": 'exit "1" here', "skip": None}
    logs.WorkerIdFilter("w-9").filter(record)
    line = logs.KeyValueFormatter().format(record)
    assert (
        ' level=info logger=agent msg="task finished" worker_id=w-9 task_id=t-1 attempt=2 ' in line
    )
    assert 'message="exit \\"1\\" here"' in line
    assert "skip" not in line
    assert "\n" not in line
