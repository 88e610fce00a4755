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

-- migration: 2
-- The core CRM (issue 3): companies, leads, deals, tasks, activities, notes, the event log and
-- full-text search. Indexes follow the list filters and sorts of API.md §3.

CREATE TABLE companies (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    name         TEXT NOT NULL,
    domain       TEXT,
    industry     TEXT,
    size         INTEGER,
    country      TEXT,
    phone        TEXT,
    website      TEXT,
    owner_id     TEXT REFERENCES users(id),
    tags         TEXT NOT NULL DEFAULT '[]',
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX companies_org_created ON companies (org_id, created_at);
CREATE INDEX companies_org_name ON companies (org_id, name COLLATE NOCASE);
CREATE INDEX companies_org_domain ON companies (org_id, domain COLLATE NOCASE);
CREATE INDEX companies_org_updated ON companies (org_id, updated_at);

CREATE TABLE leads (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations(id),
    first_name        TEXT,
    last_name         TEXT,
    email             TEXT,
    phone             TEXT,
    title             TEXT,
    company_id        TEXT REFERENCES companies(id),
    company_name      TEXT,
    country           TEXT,
    status            TEXT NOT NULL CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost')),
    source            TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    owner_id          TEXT REFERENCES users(id),
    score             INTEGER NOT NULL DEFAULT 0,
    last_activity_at  INTEGER,
    converted_deal_id TEXT,
    converted_at      INTEGER,
    version           INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX leads_org_email ON leads (org_id, email COLLATE NOCASE) WHERE email IS NOT NULL;
CREATE INDEX leads_org_created ON leads (org_id, created_at);
CREATE INDEX leads_org_status_created ON leads (org_id, status, created_at);
CREATE INDEX leads_org_owner ON leads (org_id, owner_id, created_at);
CREATE INDEX leads_org_company ON leads (org_id, company_id);
CREATE INDEX leads_org_score ON leads (org_id, score);
CREATE INDEX leads_org_updated ON leads (org_id, updated_at);

CREATE TABLE deals (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations(id),
    title               TEXT NOT NULL,
    value               INTEGER NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL,
    pipeline_id         TEXT NOT NULL REFERENCES pipelines(id),
    stage_id            TEXT NOT NULL REFERENCES stages(id),
    status              TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    owner_id            TEXT REFERENCES users(id),
    lead_id             TEXT REFERENCES leads(id),
    company_id          TEXT REFERENCES companies(id),
    expected_close_date TEXT,
    lost_reason         TEXT,
    closed_at           INTEGER,
    stage_entered_at    INTEGER NOT NULL,
    last_activity_at    INTEGER,
    tags                TEXT NOT NULL DEFAULT '[]',
    version             INTEGER NOT NULL DEFAULT 1,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX deals_org_created ON deals (org_id, created_at);
CREATE INDEX deals_org_stage ON deals (org_id, stage_id, created_at);
CREATE INDEX deals_org_status_value ON deals (org_id, status, value);
CREATE INDEX deals_org_owner ON deals (org_id, owner_id, created_at);
CREATE INDEX deals_org_lead ON deals (org_id, lead_id);
CREATE INDEX deals_org_company ON deals (org_id, company_id);
CREATE INDEX deals_org_close ON deals (org_id, expected_close_date);
CREATE INDEX deals_org_updated ON deals (org_id, updated_at);

CREATE TABLE deal_stage_history (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    deal_id       TEXT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    from_stage_id   TEXT REFERENCES stages(id),
    from_stage_name TEXT,
    to_stage_id     TEXT REFERENCES stages(id),
    to_stage_name   TEXT NOT NULL,
    changed_at    INTEGER NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    lost_reason   TEXT
) STRICT;
CREATE INDEX deal_stage_history_deal ON deal_stage_history (deal_id, changed_at);

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    title        TEXT NOT NULL,
    description  TEXT,
    status       TEXT NOT NULL CHECK (status IN ('open', 'completed', 'cancelled')),
    priority     TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    due_at       INTEGER,
    assignee_id  TEXT REFERENCES users(id),
    deal_id      TEXT REFERENCES deals(id) ON DELETE CASCADE,
    lead_id      TEXT REFERENCES leads(id) ON DELETE CASCADE,
    completed_at INTEGER,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX tasks_org_created ON tasks (org_id, created_at);
CREATE INDEX tasks_org_status_due ON tasks (org_id, status, due_at);
CREATE INDEX tasks_org_assignee ON tasks (org_id, assignee_id, status);
CREATE INDEX tasks_deal ON tasks (deal_id, status, due_at);
CREATE INDEX tasks_lead ON tasks (lead_id, status, due_at);

CREATE TABLE activities (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    type             TEXT NOT NULL,
    subject          TEXT,
    body             TEXT,
    deal_id          TEXT REFERENCES deals(id) ON DELETE CASCADE,
    lead_id          TEXT REFERENCES leads(id) ON DELETE CASCADE,
    user_id          TEXT REFERENCES users(id),
    occurred_at      INTEGER NOT NULL,
    duration_seconds INTEGER,
    outcome          TEXT,
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX activities_org_created ON activities (org_id, created_at);
CREATE INDEX activities_org_type ON activities (org_id, type, occurred_at);
CREATE INDEX activities_deal ON activities (deal_id, occurred_at);
CREATE INDEX activities_lead ON activities (lead_id, occurred_at);

CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    content    TEXT NOT NULL,
    deal_id    TEXT REFERENCES deals(id) ON DELETE CASCADE,
    lead_id    TEXT REFERENCES leads(id) ON DELETE CASCADE,
    author_id  TEXT REFERENCES users(id),
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX notes_org_created ON notes (org_id, created_at);
CREATE INDEX notes_deal ON notes (deal_id, created_at);
CREATE INDEX notes_lead ON notes (lead_id, created_at);

-- The event log (API.md §7): one row per change, written in the change's own transaction.
-- `seq` is the global, gap-free-per-commit order that SSE resumes and webhook deliveries follow.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    type       TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX events_org_seq ON events (org_id, seq);

-- Full-text search over leads, companies, deals and notes, kept in step by triggers so every
-- write updates it in its own transaction. An entry's rowid is the source row's rowid * 4 + a
-- kind code (lead 0, company 1, deal 2, note 3), so updates and deletes find it by key.
CREATE VIRTUAL TABLE search_index USING fts5(
    title, body,
    org_id UNINDEXED, kind UNINDEXED, object_id UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

CREATE TRIGGER leads_search_insert AFTER INSERT ON leads BEGIN
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id) VALUES (new.rowid * 4 + 0,
        trim(coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '')),
        concat_ws(' ', new.email, new.company_name, new.title, new.phone),
        new.org_id, 'lead', new.id);
END;
CREATE TRIGGER leads_search_update
AFTER UPDATE OF first_name, last_name, email, company_name, title, phone ON leads BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 0;
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id) VALUES (new.rowid * 4 + 0,
        trim(coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '')),
        concat_ws(' ', new.email, new.company_name, new.title, new.phone),
        new.org_id, 'lead', new.id);
END;
CREATE TRIGGER leads_search_delete AFTER DELETE ON leads BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 0;
END;

CREATE TRIGGER companies_search_insert AFTER INSERT ON companies BEGIN
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id) VALUES (new.rowid * 4 + 1,
        new.name, concat_ws(' ', new.domain, new.industry, new.country), new.org_id, 'company', new.id);
END;
CREATE TRIGGER companies_search_update
AFTER UPDATE OF name, domain, industry, country ON companies BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 1;
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id) VALUES (new.rowid * 4 + 1,
        new.name, concat_ws(' ', new.domain, new.industry, new.country), new.org_id, 'company', new.id);
END;
CREATE TRIGGER companies_search_delete AFTER DELETE ON companies BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 1;
END;

CREATE TRIGGER deals_search_insert AFTER INSERT ON deals BEGIN
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id)
    VALUES (new.rowid * 4 + 2, new.title, '', new.org_id, 'deal', new.id);
END;
CREATE TRIGGER deals_search_update AFTER UPDATE OF title ON deals BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 2;
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id)
    VALUES (new.rowid * 4 + 2, new.title, '', new.org_id, 'deal', new.id);
END;
CREATE TRIGGER deals_search_delete AFTER DELETE ON deals BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 2;
END;

CREATE TRIGGER notes_search_insert AFTER INSERT ON notes BEGIN
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id)
    VALUES (new.rowid * 4 + 3, '', new.content, new.org_id, 'note', new.id);
END;
CREATE TRIGGER notes_search_update AFTER UPDATE OF content ON notes BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 3;
    INSERT INTO search_index (rowid, title, body, org_id, kind, object_id)
    VALUES (new.rowid * 4 + 3, '', new.content, new.org_id, 'note', new.id);
END;
CREATE TRIGGER notes_search_delete AFTER DELETE ON notes BEGIN
    DELETE FROM search_index WHERE rowid = old.rowid * 4 + 3;
END;

-- migration: 3
-- Agent intelligence (issue 4): per-deal agent memory, buying signals, quotas.

CREATE TABLE deal_memory (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    deal_id      TEXT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    content      TEXT NOT NULL,
    tags         TEXT NOT NULL DEFAULT '[]',
    kind         TEXT NOT NULL CHECK (kind IN ('fact', 'preference', 'objection', 'next_step', 'summary', 'other')),
    source       TEXT,
    confidence   REAL CHECK (confidence BETWEEN 0 AND 1),
    created_by_type TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX deal_memory_deal ON deal_memory (deal_id, created_at);
CREATE INDEX deal_memory_deal_kind ON deal_memory (deal_id, kind, created_at);

-- One row per buying signal. `cause_key` names what raised it; at most one signal per cause is
-- open or dismissed at a time (the partial unique index), so sweeps never duplicate one.
CREATE TABLE signals (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    type         TEXT NOT NULL,
    score        INTEGER NOT NULL,
    title        TEXT NOT NULL,
    deal_id      TEXT REFERENCES deals(id) ON DELETE CASCADE,
    lead_id      TEXT REFERENCES leads(id) ON DELETE CASCADE,
    cause_key    TEXT NOT NULL,
    evidence     TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL CHECK (status IN ('open', 'dismissed', 'resolved')),
    detected_at  INTEGER NOT NULL,
    resolved_at  INTEGER,
    dismissed_at INTEGER
) STRICT;
CREATE UNIQUE INDEX signals_live_cause ON signals (org_id, cause_key) WHERE status <> 'resolved';
CREATE INDEX signals_org_status_score ON signals (org_id, status, score);
CREATE INDEX signals_deal ON signals (deal_id, status);
CREATE INDEX signals_lead ON signals (lead_id, status);

-- Targets per user and period (month, quarter or year, named by its first day).
CREATE TABLE quotas (
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    period       TEXT NOT NULL CHECK (period IN ('month', 'quarter', 'year')),
    period_start TEXT NOT NULL,
    revenue      INTEGER,
    deals        INTEGER,
    meetings     INTEGER,
    activities   INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, period, period_start)
) STRICT, WITHOUT ROWID;

CREATE INDEX deals_org_status_closed ON deals (org_id, status, closed_at);
-- Ranking every open deal by risk reads only this index: everything the rules need, in order.
CREATE INDEX deals_org_status_risk ON deals (org_id, status, id, value, stage_id, stage_entered_at,
                                             last_activity_at, created_at, expected_close_date, lead_id);
-- Counting every open deal's open tasks when ranking risk reads only this index.
CREATE INDEX tasks_org_status_deal ON tasks (org_id, status, deal_id);
CREATE INDEX activities_org_user_type ON activities (org_id, user_id, type, occurred_at);

-- migration: 4
-- Webhooks (issue 5): endpoints and their durable deliveries. A delivery row is written in the
-- same transaction as its event, so a restart resumes every pending one.

CREATE TABLE webhooks (
    id                       TEXT PRIMARY KEY,
    org_id                   TEXT NOT NULL REFERENCES organizations(id),
    url                      TEXT NOT NULL,
    description              TEXT,
    event_types              TEXT NOT NULL DEFAULT '["*"]',
    active                   INTEGER NOT NULL DEFAULT 1,
    secret                   TEXT NOT NULL,
    previous_secret          TEXT,
    previous_secret_until    INTEGER,
    disabled_reason          TEXT,
    failing_since            INTEGER,
    version                  INTEGER NOT NULL DEFAULT 1,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_org_active ON webhooks (org_id, active);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    last_latency_ms  INTEGER,
    response_excerpt TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

-- migration: 5
-- Ranking reads every open task of the organization in deal order; with due_at in the index it
-- counts them and spots the overdue ones without touching the table.
DROP INDEX tasks_org_status_deal;
CREATE INDEX tasks_org_status_deal_due ON tasks (org_id, status, deal_id, due_at);

-- The count and value of each organization's open deals, kept by triggers, so that a deal's
-- risk ("high value against the open pipeline") needs no scan of every open deal.
CREATE TABLE open_deal_totals (
    org_id TEXT PRIMARY KEY REFERENCES organizations(id),
    deals  INTEGER NOT NULL,
    value  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO open_deal_totals (org_id, deals, value)
    SELECT org_id, COUNT(*), coalesce(sum(value), 0) FROM deals WHERE status = 'open' GROUP BY org_id;
CREATE TRIGGER deals_open_totals_insert AFTER INSERT ON deals WHEN NEW.status = 'open' BEGIN
    INSERT INTO open_deal_totals (org_id, deals, value) VALUES (NEW.org_id, 1, NEW.value)
        ON CONFLICT (org_id) DO UPDATE SET deals = deals + 1, value = value + excluded.value;
END;
CREATE TRIGGER deals_open_totals_delete AFTER DELETE ON deals WHEN OLD.status = 'open' BEGIN
    UPDATE open_deal_totals SET deals = deals - 1, value = value - OLD.value WHERE org_id = OLD.org_id;
END;
CREATE TRIGGER deals_open_totals_update AFTER UPDATE OF status, value ON deals
    WHEN OLD.status = 'open' OR NEW.status = 'open' BEGIN
    UPDATE open_deal_totals SET deals = deals - 1, value = value - OLD.value
        WHERE org_id = OLD.org_id AND OLD.status = 'open';
    INSERT INTO open_deal_totals (org_id, deals, value)
        SELECT NEW.org_id, 1, NEW.value WHERE NEW.status = 'open'
        ON CONFLICT (org_id) DO UPDATE SET deals = deals + 1, value = value + excluded.value;
END;

-- How far the event log has been pruned (retention): a stream resuming from before this seq
-- cannot be replayed exactly and is told so with a reset event.
CREATE TABLE event_log_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL
) STRICT;
INSERT INTO event_log_state (id, pruned_through) VALUES (1, 0);

-- migration: 6
-- Per-deal email inboxes and their messages. An outbound message is queued in the same
-- transaction as its event; the row itself is the outbox entry the sender works through.
CREATE TABLE email_inboxes (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    deal_id      TEXT NOT NULL UNIQUE REFERENCES deals(id) ON DELETE CASCADE,
    address      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE TABLE emails (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    deal_id          TEXT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    inbox_id         TEXT NOT NULL REFERENCES email_inboxes(id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'received')),
    message_id       TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    in_reply_to      TEXT,
    refs             TEXT NOT NULL DEFAULT '[]',
    from_address     TEXT NOT NULL,
    from_name        TEXT,
    to_addresses     TEXT NOT NULL DEFAULT '[]',
    cc_addresses     TEXT NOT NULL DEFAULT '[]',
    bcc_addresses    TEXT NOT NULL DEFAULT '[]',
    subject          TEXT NOT NULL DEFAULT '',
    text_body        TEXT,
    html_body        TEXT,
    headers          TEXT NOT NULL DEFAULT '{}',
    attachments      TEXT NOT NULL DEFAULT '[]',
    track_opens      INTEGER NOT NULL DEFAULT 0,
    open_token       TEXT UNIQUE,
    open_count       INTEGER NOT NULL DEFAULT 0,
    first_opened_at  INTEGER,
    last_opened_at   INTEGER,
    user_id          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (org_id, message_id)
) STRICT;
CREATE INDEX emails_deal ON emails (deal_id, created_at);
CREATE INDEX emails_thread ON emails (deal_id, thread_id, created_at);
CREATE INDEX emails_outbox ON emails (status, next_attempt_at) WHERE status IN ('queued', 'sending');

-- migration: 7
-- "My open deals, largest first" (an owner's pipeline, the commonest list an agent or a rep
-- asks for): its count reads only this index and its page stops after the page.
CREATE INDEX deals_org_owner_status_value ON deals (org_id, owner_id, status, value);

-- migration: 8
-- What deal risk needs from a deal's tasks and emails, kept on the deal by triggers, so that
-- scoring a deal (a list's page, or every open deal when ranking) reads the deal and nothing
-- else. `open_tasks` counts its open tasks; `first/second/third_due_at` are the three earliest
-- due times among them (risk counts overdue tasks only up to three); `last_reply_at` and
-- `last_open_at` are its latest `email_received` and `email_opened` activities. Detail views
-- still read the tasks and activities themselves (titles and ids).
ALTER TABLE deals ADD COLUMN open_tasks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deals ADD COLUMN first_due_at INTEGER;
ALTER TABLE deals ADD COLUMN second_due_at INTEGER;
ALTER TABLE deals ADD COLUMN third_due_at INTEGER;
ALTER TABLE deals ADD COLUMN last_reply_at INTEGER;
ALTER TABLE deals ADD COLUMN last_open_at INTEGER;

-- Setting `open_tasks` to -1 asks for all of a deal's facts to be counted again from its tasks
-- and activities (the one place that says how); the triggers below do that on every change
-- they cannot apply by arithmetic.
CREATE TRIGGER deals_facts_recount AFTER UPDATE OF open_tasks ON deals
    WHEN NEW.open_tasks = -1 BEGIN
    UPDATE deals SET
        open_tasks    = (SELECT count(*) FROM tasks WHERE deal_id = NEW.id AND status = 'open'),
        first_due_at  = (SELECT due_at FROM tasks WHERE deal_id = NEW.id AND status = 'open'
                           AND due_at IS NOT NULL ORDER BY due_at LIMIT 1),
        second_due_at = (SELECT due_at FROM tasks WHERE deal_id = NEW.id AND status = 'open'
                           AND due_at IS NOT NULL ORDER BY due_at LIMIT 1 OFFSET 1),
        third_due_at  = (SELECT due_at FROM tasks WHERE deal_id = NEW.id AND status = 'open'
                           AND due_at IS NOT NULL ORDER BY due_at LIMIT 1 OFFSET 2),
        last_reply_at = (SELECT max(occurred_at) FROM activities
                          WHERE deal_id = NEW.id AND type = 'email_received'),
        last_open_at  = (SELECT max(occurred_at) FROM activities
                          WHERE deal_id = NEW.id AND type = 'email_opened')
        WHERE id = NEW.id;
END;
CREATE TRIGGER tasks_deal_facts_insert AFTER INSERT ON tasks
    WHEN NEW.deal_id IS NOT NULL AND NEW.status = 'open' BEGIN
    UPDATE deals SET open_tasks = -1 WHERE id = NEW.deal_id;
END;
CREATE TRIGGER tasks_deal_facts_delete AFTER DELETE ON tasks
    WHEN OLD.deal_id IS NOT NULL AND OLD.status = 'open' BEGIN
    UPDATE deals SET open_tasks = -1 WHERE id = OLD.deal_id;
END;
CREATE TRIGGER tasks_deal_facts_update AFTER UPDATE OF status, due_at, deal_id ON tasks
    WHEN OLD.status = 'open' OR NEW.status = 'open' BEGIN
    UPDATE deals SET open_tasks = -1 WHERE id IN (OLD.deal_id, NEW.deal_id);
END;
-- A new reply or open only moves the latest time forward (the common case: no recount).
CREATE TRIGGER activities_deal_facts_insert AFTER INSERT ON activities
    WHEN NEW.deal_id IS NOT NULL AND NEW.type IN ('email_received', 'email_opened') BEGIN
    UPDATE deals SET
        last_reply_at = CASE WHEN NEW.type = 'email_received'
                             THEN max(coalesce(last_reply_at, NEW.occurred_at), NEW.occurred_at)
                             ELSE last_reply_at END,
        last_open_at  = CASE WHEN NEW.type = 'email_opened'
                             THEN max(coalesce(last_open_at, NEW.occurred_at), NEW.occurred_at)
                             ELSE last_open_at END
        WHERE id = NEW.deal_id;
END;
CREATE TRIGGER activities_deal_facts_delete AFTER DELETE ON activities
    WHEN OLD.deal_id IS NOT NULL AND OLD.type IN ('email_received', 'email_opened') BEGIN
    UPDATE deals SET open_tasks = -1 WHERE id = OLD.deal_id;
END;
CREATE TRIGGER activities_deal_facts_update AFTER UPDATE OF type, occurred_at, deal_id ON activities
    WHEN OLD.type IN ('email_received', 'email_opened')
      OR NEW.type IN ('email_received', 'email_opened') BEGIN
    UPDATE deals SET open_tasks = -1 WHERE id IN (OLD.deal_id, NEW.deal_id);
END;
UPDATE deals SET open_tasks = -1;

-- Ranking every open deal by risk reads only this index: everything the rules need, in id order.
DROP INDEX deals_org_status_risk;
CREATE INDEX deals_org_status_facts ON deals (org_id, status, id, value, stage_id, stage_entered_at,
    last_activity_at, created_at, expected_close_date, lead_id, open_tasks, first_due_at,
    second_due_at, third_due_at, last_reply_at, last_open_at);

-- migration: 9
-- A counter that every write transaction of clozup bumps before it commits (once per group
-- commit). Read inside a read snapshot, it names the commit that snapshot sees, so a list's
-- total counted in one snapshot can be given again to any later snapshot of the same commit.
CREATE TABLE commit_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO commit_seq (id, n) VALUES (1, 0);

-- migration: 10
-- Search entries are queued during a write transaction and written to search_index once, just
-- before it commits (`domain::search::write_queued`). Written by the triggers directly, FTS5
-- flushed its pending terms into a new segment at every savepoint, and group commit runs each
-- write in a savepoint of its own: one segment, and its merges, per write (12% of the server's
-- CPU while creating leads). The queue is an ordinary table, so a write that is rolled back takes
-- its entries with it. An entry is the search_index rowid (the source row's rowid * 4 + kind
-- code, as before) with its new content, or with a NULL object_id when the source row is gone;
-- the last change of a row in the transaction is the one that counts (`search_put` deletes the
-- row's entry and inserts its own; no conflict clause, which an outer statement's would override).
CREATE TABLE search_queue (
    entry     INTEGER PRIMARY KEY,
    title     TEXT,
    body      TEXT,
    org_id    TEXT,
    kind      TEXT,
    object_id TEXT
) STRICT;

DROP TRIGGER leads_search_insert;
DROP TRIGGER leads_search_update;
DROP TRIGGER leads_search_delete;
DROP TRIGGER companies_search_insert;
DROP TRIGGER companies_search_update;
DROP TRIGGER companies_search_delete;
DROP TRIGGER deals_search_insert;
DROP TRIGGER deals_search_update;
DROP TRIGGER deals_search_delete;
DROP TRIGGER notes_search_insert;
DROP TRIGGER notes_search_update;
DROP TRIGGER notes_search_delete;

-- What each kind of row puts in the index, said once. `source` is the row's rowid and `code`
-- its kind's code, so a row's entry is source * 4 + code.
CREATE VIEW search_entries AS
    SELECT rowid AS source, 0 AS code,
           trim(coalesce(first_name, '') || ' ' || coalesce(last_name, '')) AS title,
           concat_ws(' ', email, company_name, title, phone) AS body,
           org_id, 'lead' AS kind, id AS object_id
    FROM leads
    UNION ALL
    SELECT rowid, 1, name, concat_ws(' ', domain, industry, country), org_id, 'company', id
    FROM companies
    UNION ALL
    SELECT rowid, 2, title, '', org_id, 'deal', id FROM deals
    UNION ALL
    SELECT rowid, 3, '', content, org_id, 'note', id FROM notes;

-- Inserting an entry number here queues that row's entry as the row now stands, or its
-- removal when the row is gone (every column NULL but the entry). The lookup reaches each
-- table by rowid (SQLite pushes the condition into the branches of the view).
CREATE VIEW search_put (entry) AS SELECT entry FROM search_queue WHERE 0;
CREATE TRIGGER search_put_entry INSTEAD OF INSERT ON search_put BEGIN
    DELETE FROM search_queue WHERE entry = new.entry;
    INSERT INTO search_queue (entry) VALUES (new.entry);
    UPDATE search_queue SET (title, body, org_id, kind, object_id) = (
        SELECT title, body, org_id, kind, object_id FROM search_entries
        WHERE source = new.entry / 4 AND code = new.entry % 4)
    WHERE entry = new.entry;
END;

CREATE TRIGGER leads_search_insert AFTER INSERT ON leads BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 0);
END;
CREATE TRIGGER leads_search_update
AFTER UPDATE OF first_name, last_name, email, company_name, title, phone ON leads BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 0);
END;
CREATE TRIGGER leads_search_delete AFTER DELETE ON leads BEGIN
    INSERT INTO search_put VALUES (old.rowid * 4 + 0);
END;
CREATE TRIGGER companies_search_insert AFTER INSERT ON companies BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 1);
END;
CREATE TRIGGER companies_search_update
AFTER UPDATE OF name, domain, industry, country ON companies BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 1);
END;
CREATE TRIGGER companies_search_delete AFTER DELETE ON companies BEGIN
    INSERT INTO search_put VALUES (old.rowid * 4 + 1);
END;
CREATE TRIGGER deals_search_insert AFTER INSERT ON deals BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 2);
END;
CREATE TRIGGER deals_search_update AFTER UPDATE OF title ON deals BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 2);
END;
CREATE TRIGGER deals_search_delete AFTER DELETE ON deals BEGIN
    INSERT INTO search_put VALUES (old.rowid * 4 + 2);
END;
CREATE TRIGGER notes_search_insert AFTER INSERT ON notes BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 3);
END;
CREATE TRIGGER notes_search_update AFTER UPDATE OF content ON notes BEGIN
    INSERT INTO search_put VALUES (new.rowid * 4 + 3);
END;
CREATE TRIGGER notes_search_delete AFTER DELETE ON notes BEGIN
    INSERT INTO search_put VALUES (old.rowid * 4 + 3);
END;

-- migration: 11
-- The search index merges its segments less eagerly. Each commit that touches search flushes
-- one new segment, and FTS5 merges a level once it holds `automerge` segments (default 4), in
-- the same commit, so the writer, and every write queued behind it, waited on merges: FTS5 was
-- a seventh of the writer thread's time while creating leads, and the merges made W3's p99
-- twice what it is without them. With 16, a merge comes a quarter as often, and with fewer
-- levels each entry is rewritten fewer times; `crisismerge` (default 16), the count at which a
-- level is merged at once whatever the cost, goes above it. Searches after 120k new leads took
-- as long as with the default (13 req/s on one connection for prefix searches either way).
INSERT INTO search_index (search_index, rank) VALUES ('automerge', 16);
INSERT INTO search_index (search_index, rank) VALUES ('crisismerge', 64);

-- migration: 12
-- Password resets (issue 18): an admin, signed in, issues a one-time token for a member who
-- cannot sign in; the member trades it for a new password. Only the token's SHA-256 is kept;
-- issuing one clears the member's password and ends their sessions, so the reset is the only
-- way back in. `created_by` is the admin who issued it, for the record.
CREATE TABLE password_resets (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    created_by   TEXT NOT NULL REFERENCES users(id),
    hash         BLOB NOT NULL UNIQUE,
    expires_at   INTEGER NOT NULL,
    -- When it was used, or voided by a newer reset or a password set another way.
    spent_at     INTEGER,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX password_resets_user ON password_resets (user_id);

-- migration: 13
-- A deal's and a lead's `last_activity_at` move forward with every activity logged on them,
-- kept here like the deal's other facts (migration 8) rather than by each writer: one mechanism
-- for derived columns. A meeting may be dated ahead; the last activity never is, so the time
-- taken is the earlier of when it happened and when it was logged. Deleting or re-dating an
-- activity leaves it (the last time something happened stays the last time).
CREATE TRIGGER activities_last_activity_insert AFTER INSERT ON activities BEGIN
    UPDATE deals SET last_activity_at = max(coalesce(last_activity_at, 0),
                                            min(NEW.occurred_at, NEW.created_at))
        WHERE id = NEW.deal_id;
    UPDATE leads SET last_activity_at = max(coalesce(last_activity_at, 0),
                                            min(NEW.occurred_at, NEW.created_at))
        WHERE id = NEW.lead_id;
END;

-- migration: 14
-- An inbound message is stored once per inbox it reaches, not once per organization: a message
-- to two deals' inboxes (which Postfix delivers once per recipient) belongs on both deals, and
-- the second delivery must not be taken for a duplicate of the first. SQLite cannot change a
-- table's UNIQUE constraint in place, so the table is rebuilt (nothing refers to it) and its
-- indexes made again, with one for the lookups by Message-ID the old constraint served.
CREATE TABLE emails_v14 (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    deal_id          TEXT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    inbox_id         TEXT NOT NULL REFERENCES email_inboxes(id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'received')),
    message_id       TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    in_reply_to      TEXT,
    refs             TEXT NOT NULL DEFAULT '[]',
    from_address     TEXT NOT NULL,
    from_name        TEXT,
    to_addresses     TEXT NOT NULL DEFAULT '[]',
    cc_addresses     TEXT NOT NULL DEFAULT '[]',
    bcc_addresses    TEXT NOT NULL DEFAULT '[]',
    subject          TEXT NOT NULL DEFAULT '',
    text_body        TEXT,
    html_body        TEXT,
    headers          TEXT NOT NULL DEFAULT '{}',
    attachments      TEXT NOT NULL DEFAULT '[]',
    track_opens      INTEGER NOT NULL DEFAULT 0,
    open_token       TEXT UNIQUE,
    open_count       INTEGER NOT NULL DEFAULT 0,
    first_opened_at  INTEGER,
    last_opened_at   INTEGER,
    user_id          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (inbox_id, message_id)
) STRICT;
INSERT INTO emails_v14 SELECT * FROM emails;
DROP TABLE emails;
ALTER TABLE emails_v14 RENAME TO emails;
CREATE INDEX emails_deal ON emails (deal_id, created_at);
CREATE INDEX emails_thread ON emails (deal_id, thread_id, created_at);
CREATE INDEX emails_outbox ON emails (status, next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX emails_message ON emails (org_id, message_id);

-- migration: 15
-- Email templates (issue 23): a subject and an HTML and/or text body in Jinja syntax, rendered
-- for a lead (and a deal). `variables` keeps the variables a template uses (a JSON array), found
-- when it is saved, so a reader sees them without parsing it.
CREATE TABLE email_templates (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    html_body   TEXT,
    text_body   TEXT,
    variables   TEXT NOT NULL DEFAULT '[]',
    created_by  TEXT,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK (html_body IS NOT NULL OR text_body IS NOT NULL)
) STRICT;
CREATE UNIQUE INDEX email_templates_name ON email_templates (org_id, name COLLATE NOCASE);
CREATE INDEX email_templates_created ON email_templates (org_id, created_at);

-- The addresses an organization never writes to again: every send checks this list, campaign
-- or not. One row per address (compared without regard to case).
CREATE TABLE suppressions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    email       TEXT NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('manual', 'unsubscribed', 'bounced', 'complained')),
    note        TEXT,
    created_by  TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX suppressions_email ON suppressions (org_id, email COLLATE NOCASE);
CREATE INDEX suppressions_created ON suppressions (org_id, created_at);

-- migration: 16
-- One-click unsubscribe (RFC 8058): a message sent with an unsubscribe link carries a token of
-- its own in `List-Unsubscribe`; posting to it suppresses the message's one recipient.
ALTER TABLE emails ADD COLUMN unsubscribe_token TEXT;
CREATE UNIQUE INDEX emails_unsubscribe ON emails (unsubscribe_token) WHERE unsubscribe_token IS NOT NULL;

-- migration: 17
-- Campaigns (issue 23): an ordered list of steps (an email from a template, a call or another
-- task) that runs for each enrolled lead, each step a delay after the one before, within a
-- sending window. Mail now also goes to and comes from a lead with no deal: a message belongs
-- to a deal, a lead, or both, and an inbox to a deal or to a campaign (its sender address).
CREATE TABLE campaigns (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    name           TEXT NOT NULL,
    description    TEXT,
    status         TEXT NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'active', 'paused', 'completed', 'archived')),
    -- The sending window: ISO weekdays (1 = Monday) as a JSON array, and minutes after
    -- midnight [from, to), in `timezone` (NULL: the organization's).
    window_days    TEXT NOT NULL DEFAULT '[1,2,3,4,5]',
    window_from    INTEGER NOT NULL DEFAULT 540,
    window_to      INTEGER NOT NULL DEFAULT 1020,
    timezone       TEXT,
    daily_cap      INTEGER,
    track_opens    INTEGER NOT NULL DEFAULT 1,
    stop_on_reply  INTEGER NOT NULL DEFAULT 1,
    stop_on_deal   INTEGER NOT NULL DEFAULT 1,
    created_by     TEXT,
    activated_at   INTEGER,
    completed_at   INTEGER,
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX campaigns_created ON campaigns (org_id, created_at);

CREATE TABLE campaign_steps (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    campaign_id  TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('email', 'call', 'task')),
    template_id  TEXT REFERENCES email_templates(id),
    in_thread    INTEGER NOT NULL DEFAULT 0,
    title        TEXT,
    delay        INTEGER NOT NULL DEFAULT 0,
    delay_unit   TEXT NOT NULL DEFAULT 'days'
                 CHECK (delay_unit IN ('minutes', 'hours', 'days', 'business_days', 'business_hours')),
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (campaign_id, position),
    CHECK ((kind = 'email') = (template_id IS NOT NULL))
) STRICT;

-- One lead's run through a campaign. `done_position` is the position of the last step that
-- ran (0: none yet); the next is the first step after it, due `next_run_at`.
CREATE TABLE enrollments (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    campaign_id    TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    lead_id        TEXT REFERENCES leads(id) ON DELETE SET NULL,
    email          TEXT,
    status         TEXT NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'paused', 'completed', 'stopped')),
    stop_reason    TEXT CHECK (stop_reason IN ('replied', 'bounced', 'unsubscribed', 'suppressed',
                                               'converted', 'manual', 'lead_deleted', 'campaign_completed')),
    done_position  INTEGER NOT NULL DEFAULT 0,
    steps_run      INTEGER NOT NULL DEFAULT 0,
    anchor_at      INTEGER NOT NULL,
    next_run_at    INTEGER,
    thread_id      TEXT,
    last_message_id TEXT,
    enrolled_by    TEXT,
    ended_at       INTEGER,
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX enrollments_live ON enrollments (campaign_id, lead_id)
    WHERE status IN ('active', 'paused');
CREATE INDEX enrollments_campaign ON enrollments (campaign_id, created_at);
CREATE INDEX enrollments_lead ON enrollments (lead_id, status);
CREATE INDEX enrollments_due ON enrollments (next_run_at) WHERE status = 'active';

-- Each step an enrollment ran, once: the primary key is what keeps a step from running twice.
CREATE TABLE enrollment_steps (
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    step_id        TEXT NOT NULL,
    org_id         TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    kind           TEXT NOT NULL,
    email_id       TEXT,
    task_id        TEXT,
    ran_at         INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, step_id)
) STRICT;
CREATE INDEX enrollment_steps_campaign ON enrollment_steps (campaign_id, kind, ran_at);

CREATE TABLE email_inboxes_v17 (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    deal_id      TEXT UNIQUE REFERENCES deals(id) ON DELETE CASCADE,
    campaign_id  TEXT UNIQUE REFERENCES campaigns(id) ON DELETE CASCADE,
    address      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT,
    created_at   INTEGER NOT NULL,
    CHECK ((deal_id IS NULL) <> (campaign_id IS NULL))
) STRICT;
INSERT INTO email_inboxes_v17 (id, org_id, deal_id, address, display_name, created_at)
    SELECT id, org_id, deal_id, address, display_name, created_at FROM email_inboxes;

CREATE TABLE emails_v17 (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    deal_id          TEXT REFERENCES deals(id) ON DELETE CASCADE,
    lead_id          TEXT REFERENCES leads(id) ON DELETE SET NULL,
    enrollment_id    TEXT REFERENCES enrollments(id) ON DELETE SET NULL,
    inbox_id         TEXT NOT NULL REFERENCES email_inboxes_v17(id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'received')),
    message_id       TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    in_reply_to      TEXT,
    refs             TEXT NOT NULL DEFAULT '[]',
    from_address     TEXT NOT NULL,
    from_name        TEXT,
    to_addresses     TEXT NOT NULL DEFAULT '[]',
    cc_addresses     TEXT NOT NULL DEFAULT '[]',
    bcc_addresses    TEXT NOT NULL DEFAULT '[]',
    subject          TEXT NOT NULL DEFAULT '',
    text_body        TEXT,
    html_body        TEXT,
    headers          TEXT NOT NULL DEFAULT '{}',
    attachments      TEXT NOT NULL DEFAULT '[]',
    track_opens      INTEGER NOT NULL DEFAULT 0,
    open_token       TEXT UNIQUE,
    open_count       INTEGER NOT NULL DEFAULT 0,
    first_opened_at  INTEGER,
    last_opened_at   INTEGER,
    user_id          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    sent_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    unsubscribe_token TEXT,
    UNIQUE (inbox_id, message_id)
) STRICT;
INSERT INTO emails_v17 (id, org_id, deal_id, lead_id, inbox_id, direction, status, message_id,
        thread_id, in_reply_to, refs, from_address, from_name, to_addresses, cc_addresses,
        bcc_addresses, subject, text_body, html_body, headers, attachments, track_opens,
        open_token, open_count, first_opened_at, last_opened_at, user_id, attempts,
        next_attempt_at, last_error, sent_at, created_at, updated_at, unsubscribe_token)
    SELECT e.id, e.org_id, e.deal_id, d.lead_id, e.inbox_id, e.direction, e.status, e.message_id,
        e.thread_id, e.in_reply_to, e.refs, e.from_address, e.from_name, e.to_addresses,
        e.cc_addresses, e.bcc_addresses, e.subject, e.text_body, e.html_body, e.headers,
        e.attachments, e.track_opens, e.open_token, e.open_count, e.first_opened_at,
        e.last_opened_at, e.user_id, e.attempts, e.next_attempt_at, e.last_error, e.sent_at,
        e.created_at, e.updated_at, e.unsubscribe_token
    FROM emails e LEFT JOIN deals d ON d.id = e.deal_id;
DROP TABLE emails;
DROP TABLE email_inboxes;
ALTER TABLE email_inboxes_v17 RENAME TO email_inboxes;
ALTER TABLE emails_v17 RENAME TO emails;
CREATE INDEX emails_deal ON emails (deal_id, created_at);
CREATE INDEX emails_thread ON emails (deal_id, thread_id, created_at);
CREATE INDEX emails_outbox ON emails (status, next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX emails_message ON emails (org_id, message_id);
CREATE UNIQUE INDEX emails_unsubscribe ON emails (unsubscribe_token) WHERE unsubscribe_token IS NOT NULL;
CREATE INDEX emails_lead ON emails (lead_id, created_at);
CREATE INDEX emails_enrollment ON emails (enrollment_id);

-- migration: 18
-- The count and value of each stage's deals, per currency, kept by triggers (as
-- open_deal_totals), so a pipeline's board shows each column's totals without reading every
-- deal of the pipeline (70 ms for 100,000).
CREATE TABLE stage_totals (
    stage_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    deals    INTEGER NOT NULL,
    value    INTEGER NOT NULL,
    PRIMARY KEY (stage_id, currency)
) STRICT, WITHOUT ROWID;
INSERT INTO stage_totals (stage_id, currency, deals, value)
    SELECT stage_id, currency, COUNT(*), coalesce(sum(value), 0) FROM deals GROUP BY stage_id, currency;
CREATE TRIGGER deals_stage_totals_insert AFTER INSERT ON deals BEGIN
    INSERT INTO stage_totals (stage_id, currency, deals, value) VALUES (NEW.stage_id, NEW.currency, 1, NEW.value)
        ON CONFLICT (stage_id, currency) DO UPDATE SET deals = deals + 1, value = value + excluded.value;
END;
CREATE TRIGGER deals_stage_totals_delete AFTER DELETE ON deals BEGIN
    UPDATE stage_totals SET deals = deals - 1, value = value - OLD.value
        WHERE stage_id = OLD.stage_id AND currency = OLD.currency;
END;
CREATE TRIGGER deals_stage_totals_update AFTER UPDATE OF stage_id, currency, value ON deals BEGIN
    UPDATE stage_totals SET deals = deals - 1, value = value - OLD.value
        WHERE stage_id = OLD.stage_id AND currency = OLD.currency;
    INSERT INTO stage_totals (stage_id, currency, deals, value) VALUES (NEW.stage_id, NEW.currency, 1, NEW.value)
        ON CONFLICT (stage_id, currency) DO UPDATE SET deals = deals + 1, value = value + excluded.value;
END;
CREATE TRIGGER stages_totals_delete AFTER DELETE ON stages BEGIN
    DELETE FROM stage_totals WHERE stage_id = OLD.id;
END;
-- The strongest signals first, ties by id (the list's order): with the id in the index the order
-- is read off it. Without it, 25 signals out of 15,000 scored 80 took a sort of all 15,000.
CREATE INDEX signals_org_status_score_id ON signals (org_id, status, score, id);
DROP INDEX signals_org_status_score;

-- migration: 19
-- Open deals' count and value per stage, currency and expected close month ('unscheduled'
-- without a date), kept by triggers as stage_totals are: the forecast sums these few rows
-- instead of reading every open deal (47 ms for 63,000).
CREATE TABLE forecast_totals (
    stage_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    month    TEXT NOT NULL,
    deals    INTEGER NOT NULL,
    value    INTEGER NOT NULL,
    PRIMARY KEY (stage_id, currency, month)
) STRICT, WITHOUT ROWID;
INSERT INTO forecast_totals (stage_id, currency, month, deals, value)
    SELECT stage_id, currency, coalesce(substr(expected_close_date, 1, 7), 'unscheduled'),
           COUNT(*), coalesce(sum(value), 0)
    FROM deals WHERE status = 'open' GROUP BY 1, 2, 3;
-- Adds (deals, value) to a stage's, currency's and month's totals: the one statement the deal
-- triggers below write them with (an INSTEAD OF trigger on a view is how SQLite shares one).
CREATE VIEW forecast_change (stage_id, currency, month, deals, value) AS
    SELECT stage_id, currency, month, deals, value FROM forecast_totals WHERE 0;
CREATE TRIGGER forecast_change_add INSTEAD OF INSERT ON forecast_change BEGIN
    INSERT INTO forecast_totals (stage_id, currency, month, deals, value)
        VALUES (NEW.stage_id, NEW.currency, NEW.month, NEW.deals, NEW.value)
        ON CONFLICT (stage_id, currency, month)
        DO UPDATE SET deals = deals + excluded.deals, value = value + excluded.value;
END;
CREATE TRIGGER deals_forecast_insert AFTER INSERT ON deals WHEN NEW.status = 'open' BEGIN
    INSERT INTO forecast_change VALUES (NEW.stage_id, NEW.currency,
        coalesce(substr(NEW.expected_close_date, 1, 7), 'unscheduled'), 1, NEW.value);
END;
CREATE TRIGGER deals_forecast_delete AFTER DELETE ON deals WHEN OLD.status = 'open' BEGIN
    INSERT INTO forecast_change VALUES (OLD.stage_id, OLD.currency,
        coalesce(substr(OLD.expected_close_date, 1, 7), 'unscheduled'), -1, -OLD.value);
END;
CREATE TRIGGER deals_forecast_update
    AFTER UPDATE OF stage_id, currency, value, status, expected_close_date ON deals BEGIN
    INSERT INTO forecast_change SELECT OLD.stage_id, OLD.currency,
        coalesce(substr(OLD.expected_close_date, 1, 7), 'unscheduled'), -1, -OLD.value
        WHERE OLD.status = 'open';
    INSERT INTO forecast_change SELECT NEW.stage_id, NEW.currency,
        coalesce(substr(NEW.expected_close_date, 1, 7), 'unscheduled'), 1, NEW.value
        WHERE NEW.status = 'open';
END;
CREATE TRIGGER stages_forecast_delete AFTER DELETE ON stages BEGIN
    DELETE FROM forecast_totals WHERE stage_id = OLD.id;
END;
-- The closed deals' sums (the overview's won value and sales cycle, the leaderboard's revenue
-- per member) read only this index: 25 ms of table lookups for 20,000 won deals before.
CREATE INDEX deals_org_status_closed_sums ON deals (org_id, status, closed_at, owner_id, currency,
    value, created_at);
DROP INDEX deals_org_status_closed;
