-- The audit writer now inserts the subject index rows itself, in the statement that
-- appends a group (bound as arrays; see `store::audit`): the trigger that derived them
-- from each entry's subject list cost PostgreSQL as much as the rest of the append.
-- The trigger stays for replicas of earlier releases, which rely on it while a rolling
-- upgrade runs (migrations only add): it now does nothing on a connection that says
-- its writer indexes subjects itself (`credithub.writer_indexes_subjects`, set by this
-- release's audit connection). A later release can drop it once no earlier one runs.
-- Replacing the function takes no lock on the audit tables, so appends carry on while
-- this migration runs.
CREATE OR REPLACE FUNCTION audit_index_subjects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('credithub.writer_indexes_subjects', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_subjects (subject, seq)
    SELECT DISTINCT s.subject, a.seq
    FROM appended a CROSS JOIN LATERAL json_array_elements_text(a.subjects::json) AS s (subject);
    RETURN NULL;
END
$$;
