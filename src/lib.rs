//! credit-hub: a gRPC service through which government departments share enterprise
//! credit information. See README.md for the tour and DESIGN.md for the shared picture.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod catch_panic;
pub mod cli;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod middleware;
pub mod overload;
pub mod pace;
pub mod peer;
pub mod proto;
pub mod quota;
pub mod seed;
pub mod server;
pub mod store;

pub use server::{Server, ShutdownPolicy, TlsFiles};

/// Largest gRPC message the server accepts and the CLI receives (16 MiB). A full batch
/// of 1,000 records or enterprises with every text field at its longest is over gRPC's
/// default of 4 MiB; larger messages fail with OUT_OF_RANGE.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
