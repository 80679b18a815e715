-- The "who looked at this subject" index is derived from each audit entry's own subject
-- list by a trigger, inside the statement that appends the entry: the audit writer then
-- appends a whole group commit in a single statement.

CREATE FUNCTION audit_index_subjects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_subjects (subject, seq)
    SELECT DISTINCT s.subject, a.seq
    FROM appended a CROSS JOIN LATERAL json_array_elements_text(a.subjects::json) AS s (subject);
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_entries_index_subjects AFTER INSERT ON audit_entries
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION audit_index_subjects();
