-- One value sealed with the secret key the first time a key is used, so that a
-- start with another key is refused at once instead of failing each webhook.
CREATE TABLE secret_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
