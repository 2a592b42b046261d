-- A delivery's state follows its latest recorded attempt. Recording an attempt
-- is then one INSERT (atomic on its own) instead of a transaction of two
-- statements: every webhook attempt writes once through SQLite's one writer.
ALTER TABLE delivery_attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT ''
    CHECK (outcome IN ('', 'pending', 'delivered', 'failed'));

CREATE TRIGGER delivery_attempt_inserted AFTER INSERT ON delivery_attempts
WHEN NEW.outcome <> '' BEGIN
    UPDATE deliveries SET status = NEW.outcome, attempts = max(attempts, NEW.attempt), updated_at = NEW.at
    WHERE id = NEW.delivery_id;
END;

-- An attempt recorded again (a worker that crashed after sending repeats it)
-- replaces the first record through ON CONFLICT … DO UPDATE, which fires UPDATE
-- triggers, not INSERT ones.
CREATE TRIGGER delivery_attempt_replaced AFTER UPDATE ON delivery_attempts
WHEN NEW.outcome <> '' BEGIN
    UPDATE deliveries SET status = NEW.outcome, attempts = max(attempts, NEW.attempt), updated_at = NEW.at
    WHERE id = NEW.delivery_id;
END;
