//! Reading the dead-letter queue from outside the engine, for the fault battery. Compiled
//! only with the `failpoints` feature.

use lapin::options::BasicGetOptions;
use pixmill_actors::ports::{BackendError, JobMessage};

use super::link::{map_error, Link, Topology};
use super::RabbitConfig;

/// Takes every message off `<queue>.dead` and returns the image id of each (or the raw
/// payload, lossily decoded, of a message that is not a job), in queue order.
pub async fn drain_dead_letters(config: &RabbitConfig) -> Result<Vec<String>, BackendError> {
    let link = Link::open(config, "dead-letter-reader").await?;
    let queue = Topology::new(&config.queue).dead_letter_queue;
    let mut ids = Vec::new();
    let options = BasicGetOptions { no_ack: true };
    while let Some(message) = link
        .channel
        .basic_get(queue.as_str().into(), options)
        .await
        .map_err(|e| map_error("read dead letters", e))?
    {
        let data = &message.delivery.data;
        let id = match serde_json::from_slice::<JobMessage>(data) {
            Ok(job) => job.image_id.to_string(),
            Err(_) => String::from_utf8_lossy(data).into_owned(),
        };
        ids.push(id);
    }
    Ok(ids)
}
