-- Agent tools a team's keys, or one key, may use (a JSON list like models; NULL is all).
ALTER TABLE teams ADD COLUMN tools TEXT;
ALTER TABLE api_keys ADD COLUMN tools TEXT;
