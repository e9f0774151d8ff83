//! A fault plan that holds chosen jobs in the transformer until the test lets them go, so a
//! test can see a job in `PENDING` or `PROCESSING` for as long as it needs.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pixmill_actors::faults::FaultPlan;
use pixmill_actors::{ImageId, ImageRecord};

/// Longest a held job waits; past it the job goes on, so a failed test cannot hang.
const MAX_HOLD: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Gate {
    released: Mutex<HashSet<ImageId>>,
    changed: Condvar,
}

impl Gate {
    /// Lets the job of `id` (a status document's `id`) through the transformer.
    pub fn release(&self, id: &str) {
        let id: ImageId = id.parse().expect("an image id");
        self.released.lock().unwrap().insert(id);
        self.changed.notify_all();
    }
}

impl FaultPlan for Gate {
    fn before_transform(&self, record: &ImageRecord, _attempt: u32) {
        let released = self.released.lock().unwrap();
        let (_released, _timeout) = self
            .changed
            .wait_timeout_while(released, MAX_HOLD, |released| {
                !released.contains(&record.id)
            })
            .unwrap();
    }
}
