-- PostgreSQL twin of migrations/0021_secret_key_check.sql.
CREATE TABLE secret_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
