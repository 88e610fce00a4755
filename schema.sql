-- Clozup database schema.
--
-- Each block opened by a marker line (two dashes, then "migration:" and N) is step N. On
-- start-up the server applies, in order and each in its own transaction, every step above the
-- file's `PRAGMA user_version`, then sets `user_version` to that step. Steps are never edited once released: a change is a new step.
--
-- Conventions: ids are prefixed, time-ordered text (`org_01J...`); timestamps are INTEGER Unix
-- milliseconds (UTC); money is INTEGER minor units; every mutable row has `version`, bumped on
-- each change (it is the ETag); every row of organization data carries `org_id`, and every
-- query filters on it.

-- migration: 1
CREATE TABLE organizations (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    currency                TEXT NOT NULL DEFAULT 'USD',
    timezone                TEXT NOT NULL DEFAULT 'UTC',
    fiscal_year_start_month INTEGER NOT NULL DEFAULT 1 CHECK (fiscal_year_start_month BETWEEN 1 AND 12),
    monthly_revenue_target  INTEGER,
    icp                     TEXT NOT NULL DEFAULT '{}',
    version                 INTEGER NOT NULL DEFAULT 1,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    password_hash  TEXT,
    active         INTEGER NOT NULL DEFAULT 1,
    deactivated_at INTEGER,
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_org_email ON users (org_id, email COLLATE NOCASE);
CREATE INDEX users_email ON users (email COLLATE NOCASE);
CREATE INDEX users_org_created ON users (org_id, created_at);

-- Only the SHA-256 of a key is stored; `prefix` is what lists show so a person can tell keys apart.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    created_by   TEXT REFERENCES users(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_org_created ON api_keys (org_id, created_at);

-- User sessions from POST /auth/login. Like keys, only the token's SHA-256 is stored.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    hash         BLOB NOT NULL UNIQUE,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

-- Stored first responses of POSTs sent with an Idempotency-Key (API.md §5), kept 24 h.
CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   BLOB NOT NULL,
    instance      TEXT NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BLOB,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, credential_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE pipelines (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    name       TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX pipelines_one_default ON pipelines (org_id) WHERE is_default = 1;

CREATE TABLE stages (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id),
    name         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    probability  INTEGER NOT NULL CHECK (probability BETWEEN 0 AND 100),
    kind         TEXT NOT NULL CHECK (kind IN ('open', 'won', 'lost')),
    rotting_days INTEGER,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX stages_pipeline_position ON stages (pipeline_id, position);
