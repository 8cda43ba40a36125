-- The input items of a stored response as `GET /v1/responses/{id}/input_items` lists them:
-- a JSON array the store does not read. NULL for responses stored before this column.
ALTER TABLE responses ADD COLUMN input_items TEXT;
