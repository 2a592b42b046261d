-- PostgreSQL twin of migrations/0004_delivery_attempt_trigger.sql: a delivery's
-- state follows its latest recorded attempt, so recording an attempt is one
-- INSERT … ON CONFLICT DO UPDATE. PostgreSQL runs a trigger function; one
-- trigger covers both the insert and the replacing update.
ALTER TABLE delivery_attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT ''
    CHECK (outcome IN ('', 'pending', 'delivered', 'failed'));

CREATE FUNCTION delivery_attempt_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcome <> '' THEN
        UPDATE deliveries SET status = NEW.outcome, attempts = GREATEST(attempts, NEW.attempt), updated_at = NEW.at
        WHERE id = NEW.delivery_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER delivery_attempt_recorded AFTER INSERT OR UPDATE ON delivery_attempts
FOR EACH ROW EXECUTE FUNCTION delivery_attempt_recorded();
