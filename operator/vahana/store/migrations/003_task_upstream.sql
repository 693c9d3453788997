-- What a task depends on (core.dependencies): each dependency's name and the ids it resolved
-- to at submission, as JSON, empty for a task with none. A restarted scheduler holds its
-- dependents back from the queue until their upstream tasks end.
ALTER TABLE tasks ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
