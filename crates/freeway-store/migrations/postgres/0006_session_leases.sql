-- The lease of the instance running a session's turn: `lease_token` names the turn, and the
-- lease lapses at `lease_until_ms` unless the holder renews it, so a crashed instance's session
-- becomes runnable again. NULL when no turn runs.
ALTER TABLE sessions ADD COLUMN lease_token TEXT;
ALTER TABLE sessions ADD COLUMN lease_until_ms BIGINT;
