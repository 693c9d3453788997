-- Where a task's latest attempt kept its whole output in its pool's storage (an s3:// or
-- sftp:// URL its worker reported), "" when the pool keeps none there.
ALTER TABLE tasks ADD COLUMN output_log TEXT NOT NULL DEFAULT '';
