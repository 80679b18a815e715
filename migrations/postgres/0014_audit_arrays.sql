-- The audit writer now inserts the subject index rows itself, in the statement that
-- appends a group (bound as arrays; see `store::audit`): the trigger that derived them
-- from each entry's subject list cost PostgreSQL as much as the rest of the append.
-- The time index becomes a BRIN index: entries are appended in nearly time order, so a
-- block range summary finds a time window for a fraction of a B-tree's upkeep on every
-- append.
DROP TRIGGER audit_entries_index_subjects ON audit_entries;
DROP FUNCTION audit_index_subjects();
DROP INDEX audit_entries_by_time;
CREATE INDEX audit_entries_by_time ON audit_entries USING brin (time) WITH (autosummarize = on);
