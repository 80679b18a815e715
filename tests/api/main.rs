//! The integration suite: the real server on an ephemeral port, called with the
//! generated clients. Runs on SQLite by default and on PostgreSQL with
//! `CREDIT_HUB_TEST_BACKEND=postgres CREDIT_HUB_TEST_DATABASE_URL=postgres://…`.

mod audit;
mod auth;
mod certificates;
mod cli;
mod faults;
mod grades;
mod helpers;
mod hostile;
mod identifiers;
mod observability;
mod other_languages;
mod privacy;
mod raw;
mod records;
mod registry;
mod repair;
mod spotcheck;
mod tls;
mod vetting;
