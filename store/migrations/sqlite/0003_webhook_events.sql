-- The webhook events a job asked for (comma-separated; see diffute.WebhookEvents).
ALTER TABLE jobs ADD COLUMN webhook_events TEXT NOT NULL DEFAULT 'completed';

-- subject tells apart messages of one event (the prompt name of a
-- prompt.completed message); with the unique index, writing an event's message
-- twice (a retried worker) is a no-op.
ALTER TABLE deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET event = 'completed' WHERE event = 'inference.completed';
CREATE UNIQUE INDEX deliveries_job_event ON deliveries (job_id, event, subject);
