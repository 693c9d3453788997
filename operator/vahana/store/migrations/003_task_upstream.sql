-- What a task depends on (core.dependencies): each dependency's name → the ids it resolved to
-- at submission, as JSON; '' for a task with none. A restarted scheduler holds its dependents
-- back from it until their upstream tasks end.
ALTER TABLE tasks ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
