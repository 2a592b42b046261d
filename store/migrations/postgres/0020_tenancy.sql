-- PostgreSQL twin of migrations/0020_tenancy.sql (idempotency keys, per-job
-- figures, daily usage). The quota check also takes a per-project advisory
-- lock (see batch.go), since PostgreSQL has many writers.
CREATE TABLE idempotency_keys (
    org          TEXT NOT NULL,
    project      TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    job_id       BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org, project, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

ALTER TABLE jobs ADD COLUMN num_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_pixel_steps BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN usage_engine_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN media_deleted_at TIMESTAMPTZ;
CREATE INDEX jobs_org_project_status ON jobs (org, project, status);
CREATE INDEX jobs_org_project_created_images ON jobs (org, project, created_at, status, num_images);
CREATE INDEX jobs_finished ON jobs (finished_at);

CREATE TABLE usage_daily (
    org          TEXT NOT NULL,
    project      TEXT NOT NULL,
    day          TEXT NOT NULL,
    images       BIGINT NOT NULL DEFAULT 0,
    pixel_steps  BIGINT NOT NULL DEFAULT 0,
    engine_ms    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, project, day)
);
