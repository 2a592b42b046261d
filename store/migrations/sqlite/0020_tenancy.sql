-- Tenancy (issue 6): idempotent submission, quotas, usage metering, retention.

-- Idempotency keys: one row per (tenant, key). The primary key is what makes
-- parallel retries safe: the row is inserted in the transaction that creates the
-- job, so of N identical requests exactly one inserts it and the others read it.
CREATE TABLE idempotency_keys (
    org          TEXT NOT NULL,
    project      TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    job_id       INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (org, project, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Per-job figures: requested images (for the per-day quota), metered usage (in
-- the status) and when retention deleted the job's media.
ALTER TABLE jobs ADD COLUMN num_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_pixel_steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_engine_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN media_deleted_at TIMESTAMP;
CREATE INDEX jobs_org_project_status ON jobs (org, project, status);
-- Covers the images-per-day sum, so the quota check reads no table rows.
CREATE INDEX jobs_org_project_created_images ON jobs (org, project, created_at, status, num_images);
CREATE INDEX jobs_finished ON jobs (finished_at);

-- Usage per project and UTC day ('YYYY-MM-DD'), added to as images are stored.
CREATE TABLE usage_daily (
    org          TEXT NOT NULL,
    project      TEXT NOT NULL,
    day          TEXT NOT NULL,
    images       INTEGER NOT NULL DEFAULT 0,
    pixel_steps  INTEGER NOT NULL DEFAULT 0,
    engine_ms    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, project, day)
);
