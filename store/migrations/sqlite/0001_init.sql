-- Jobs: one row per accepted inference request. id is diffute.NewJobID (random,
-- below 2^53), not an autoincrement, so IDs cannot be guessed from one another.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    org           TEXT NOT NULL,
    project       TEXT NOT NULL,
    name          TEXT NOT NULL,
    model         TEXT NOT NULL,
    webhook       TEXT NOT NULL DEFAULT '',
    secret        TEXT NOT NULL DEFAULT '', -- stored as given until secrets are encrypted
    output_format TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    error         TEXT NOT NULL DEFAULT '',
    river_job_id  INTEGER,
    created_at    TIMESTAMP NOT NULL,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP
);
CREATE INDEX jobs_org_project_created ON jobs (org, project, created_at);

-- Prompts: the resolved PromptRequest (seed always set) as JSON, plus progress.
CREATE TABLE prompts (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    request     TEXT NOT NULL,
    images_done INTEGER NOT NULL DEFAULT 0,
    steps_done  INTEGER NOT NULL DEFAULT 0,
    steps_total INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);

-- Images: the primary key makes recording idempotent, so a retried job that
-- regenerates an image never stores it twice.
CREATE TABLE images (
    job_id     INTEGER NOT NULL,
    prompt_idx INTEGER NOT NULL,
    image_idx  INTEGER NOT NULL,
    media_key  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, prompt_idx, image_idx),
    FOREIGN KEY (job_id, prompt_idx) REFERENCES prompts (job_id, idx) ON DELETE CASCADE
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    org        TEXT NOT NULL,
    project    TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    hash       BLOB NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX api_keys_org ON api_keys (org);

-- Deliveries: one webhook message. webhook_id is the stable message ID sent on
-- every attempt so receivers can deduplicate.
CREATE TABLE deliveries (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL UNIQUE,
    event      TEXT NOT NULL,
    url        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX deliveries_job ON deliveries (job_id);

CREATE TABLE delivery_attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TIMESTAMP NOT NULL,
    status_code INTEGER NOT NULL DEFAULT 0,
    latency_ms  INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    excerpt     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);
