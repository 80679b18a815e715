-- A fingerprint of the HMAC key persons are keyed with (an HMAC of a fixed text, which
-- does not reveal the key): a server started with another key, say after a lost
-- hmac.key was generated anew beside a restored database, would find no stored person
-- again, so it refuses to start instead.
CREATE TABLE person_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL
);
