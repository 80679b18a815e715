-- SQLite's audit writer now inserts the subject index rows itself (see the SQLite migration
-- of the same version). PostgreSQL keeps its statement-level trigger, which indexes a whole
-- group in one pass inside the single statement that appends it; this version exists so
-- that both backends keep the same migration versions.
SELECT 1;
