-- Each queue's decayed usage in the fair share (core.fairshare.SavedUsage): core-seconds as of
-- a time. The scheduler writes the queues whose usage changed now and then and when it stops;
-- a restarted one starts each queue from its row, decayed over the time it was away.
CREATE TABLE queue_usage (
    queue TEXT PRIMARY KEY,
    decayed DOUBLE PRECISION NOT NULL,
    as_of DOUBLE PRECISION NOT NULL
);
