-- PostgreSQL's audit writer now indexes subjects itself (see the PostgreSQL migration
-- of the same version); SQLite's already does. This version exists so that both
-- backends keep the same migration versions.
SELECT 1;
