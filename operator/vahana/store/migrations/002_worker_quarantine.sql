-- Why a worker was quarantined (core.quarantine): it stays refused under its id after a restart.
ALTER TABLE workers ADD COLUMN quarantine_reason TEXT NOT NULL DEFAULT '';
