//! Services the contract declares whose capabilities later milestones build. Their
//! generated traits answer UNIMPLEMENTED by default; callers still authenticate first.

use crate::proto::v1::{
    certificate_service_server::CertificateService, vetting_service_server::VettingService,
};

/// Answers every RPC of the not-yet-built services with UNIMPLEMENTED.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unimplemented;

impl VettingService for Unimplemented {}
impl CertificateService for Unimplemented {}
