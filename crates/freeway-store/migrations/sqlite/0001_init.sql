-- Teams own keys and usage; every tenant-scoped row carries team_id.
CREATE TABLE teams (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    models        TEXT,
    budget_nanos  BIGINT,
    budget_period TEXT NOT NULL DEFAULT 'month',
    rpm           BIGINT,
    tpm           BIGINT,
    on_exceed     TEXT,
    created_at    BIGINT NOT NULL
);

-- A key is stored only as the SHA-256 of its secret; `prefix` is what lists show.
CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY,
    team_id            TEXT NOT NULL REFERENCES teams(id),
    name               TEXT,
    role               TEXT NOT NULL,
    hash               TEXT NOT NULL UNIQUE,
    prefix             TEXT NOT NULL,
    previous_hash      TEXT UNIQUE,
    previous_valid_to  BIGINT,
    models             TEXT,
    budget_nanos       BIGINT,
    budget_period      TEXT NOT NULL DEFAULT 'month',
    rpm                BIGINT,
    tpm                BIGINT,
    on_exceed          TEXT,
    created_at         BIGINT NOT NULL,
    rotated_at         BIGINT,
    expires_at         BIGINT,
    revoked_at         BIGINT
);
CREATE INDEX api_keys_team ON api_keys (team_id);

-- One row per request that reached a model; cost in billionths of a USD.
CREATE TABLE usage_ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            BIGINT NOT NULL,
    request_id    TEXT NOT NULL,
    team_id       TEXT,
    key_id        TEXT,
    endpoint      TEXT NOT NULL,
    model         TEXT NOT NULL,
    target        TEXT,
    provider      TEXT,
    status        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_nanos    BIGINT NOT NULL,
    estimated     BIGINT NOT NULL,
    cache_hit     BIGINT NOT NULL,
    latency_ms    BIGINT NOT NULL
);
CREATE INDEX usage_team_at ON usage_ledger (team_id, at);
CREATE INDEX usage_key_at ON usage_ledger (key_id, at);
CREATE INDEX usage_at ON usage_ledger (at);

-- Append-only, hash-chained: hash = SHA-256(prev_hash || the row's canonical JSON).
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    team_id   TEXT,
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_team_seq ON audit_log (team_id, seq);

-- The chain's head: updating it first takes the write lock, so appends never interleave,
-- and a truncated tail shows up as a head that points past the last row.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
