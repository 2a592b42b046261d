-- Webhook signing secrets: one current secret per project (expires_at NULL) and,
-- after a rotation, the previous one until expires_at, so both sign meanwhile.
-- secret is sealed (AES-256-GCM, see DB.SetSecretKey) when the store has a key,
-- as serve and the CLI always give it; it is never logged.
CREATE TABLE webhook_secrets (
    id         INTEGER PRIMARY KEY,
    org        TEXT NOT NULL,
    project    TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP
);
CREATE INDEX webhook_secrets_tenant ON webhook_secrets (org, project);
CREATE UNIQUE INDEX webhook_secrets_current ON webhook_secrets (org, project) WHERE expires_at IS NULL;
