-- Stored Responses API answers (`store: true`), for `GET /v1/responses/{id}` and for
-- continuing a conversation with `previous_response_id`. A NULL team_id is a response made
-- by the master key or an open server: only the all-teams scope sees it. `body` is the
-- response object and `conversation` the turns that precede the next one, both JSON the
-- store does not read.
CREATE TABLE responses (
    id           TEXT PRIMARY KEY,
    team_id      TEXT REFERENCES teams(id) ON DELETE CASCADE,
    key_id       TEXT,
    model        TEXT NOT NULL,
    previous_id  TEXT,
    created_ms   BIGINT NOT NULL,
    body         TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX responses_team_created ON responses (team_id, created_ms);
