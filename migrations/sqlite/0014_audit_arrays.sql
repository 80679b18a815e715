-- PostgreSQL's audit writer now indexes subjects itself and its time index became a
-- BRIN index (see the PostgreSQL migration of the same version). SQLite's writer
-- already indexes subjects itself and SQLite has no BRIN; this version exists so that
-- both backends keep the same migration versions.
SELECT 1;
