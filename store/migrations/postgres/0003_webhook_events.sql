-- PostgreSQL twin of migrations/0003_webhook_events.sql.
ALTER TABLE jobs ADD COLUMN webhook_events TEXT NOT NULL DEFAULT 'completed';

ALTER TABLE deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET event = 'completed' WHERE event = 'inference.completed';
CREATE UNIQUE INDEX deliveries_job_event ON deliveries (job_id, event, subject);
