-- Where each audit writer's last group commit ended, written in the same transaction
-- as the group's entries. When a commit reports an error that may not be one (the
-- connection dropped after COMMIT was sent), the writer reads its own row to learn
-- whether the group landed: entries alone cannot tell, since two calls (on two
-- replicas) can log identical entries. One row per server process that has written.
CREATE TABLE audit_appends (
    writer    TEXT PRIMARY KEY,
    last_seq  INTEGER NOT NULL
);
