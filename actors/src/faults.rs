//! Fault injection for tests. The engine calls these hooks at fixed points; the default plan
//! does nothing. A plan can only be installed through the library API
//! ([`crate::engine::Engine::start`]), never from configuration, so it cannot be switched on
//! in a deployment.

use crate::record::ImageRecord;

pub trait FaultPlan: Send + Sync + 'static {
    /// Runs on the CPU pool just before `record` is transformed for `attempt`. A panic here
    /// behaves exactly like a panic inside an image codec.
    fn before_transform(&self, _record: &ImageRecord, _attempt: u32) {}
}

/// The plan of every real deployment.
pub struct NoFaults;

impl FaultPlan for NoFaults {}
