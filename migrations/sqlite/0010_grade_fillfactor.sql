-- PostgreSQL leaves room on credit_grades pages for in-place updates from here on
-- (see the PostgreSQL migration of the same version). SQLite has no such setting; this
-- version exists so that both backends keep the same migration versions.
SELECT 1;
