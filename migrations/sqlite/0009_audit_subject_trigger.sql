-- The "who looked at this subject" index is derived from each audit entry's own subject
-- list by a trigger, inside the statement that appends the entry: the audit writer then
-- appends a whole group commit in a single statement.

CREATE TRIGGER audit_entries_index_subjects AFTER INSERT ON audit_entries
BEGIN
    INSERT INTO audit_subjects (subject, seq)
    SELECT DISTINCT value, NEW.seq FROM json_each(NEW.subjects);
END;
