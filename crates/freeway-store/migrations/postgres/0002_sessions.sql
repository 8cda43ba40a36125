-- Agent sessions. A NULL team_id is a session made by the master key or an open server:
-- only the all-teams scope sees it.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    team_id           TEXT REFERENCES teams(id) ON DELETE CASCADE,
    key_id            TEXT,
    agent             TEXT NOT NULL,
    model             TEXT NOT NULL,
    working_directory TEXT NOT NULL,
    title             TEXT,
    status            TEXT NOT NULL,
    parent_id         TEXT,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL,
    last_seq          BIGINT NOT NULL,
    steps             BIGINT NOT NULL,
    input_tokens      BIGINT NOT NULL,
    output_tokens     BIGINT NOT NULL,
    cost_nanos        BIGINT NOT NULL
);
CREATE INDEX sessions_team_updated ON sessions (team_id, updated_ms);

-- A session's transcript, numbered 1, 2, 3… by bumping sessions.last_seq in the same
-- transaction; `data` is JSON the store does not read.
CREATE TABLE session_items (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
