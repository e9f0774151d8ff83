//! Metrics read at scrape time from the things that own the numbers: the engine's actor
//! snapshots (restarts, mailboxes, per stage) and hung renders, and the gateway's upload
//! slots.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use pixmill_actors::engine::EngineSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tokio::sync::Semaphore;

use crate::gateway::EngineView;

/// Where the scrape-time metrics come from. The engine starts after the metrics exist (it
/// reports into them), so its view is attached later, once.
pub struct RuntimeSources {
    engine: OnceLock<EngineView>,
    upload_slots: Arc<Semaphore>,
    upload_capacity: usize,
}

impl RuntimeSources {
    pub fn new(upload_slots: Arc<Semaphore>, upload_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            engine: OnceLock::new(),
            upload_slots,
            upload_capacity,
        })
    }

    /// Attaches the engine; a second call is ignored.
    pub fn attach_engine(&self, view: EngineView) {
        let _ = self.engine.set(view);
    }
}

/// Per-stage sums of the actors' counters.
#[derive(Default)]
struct StageTotals {
    restarts: u64,
    depth: u64,
    capacity: u64,
}

pub struct RuntimeCollector {
    sources: Arc<RuntimeSources>,
}

impl RuntimeCollector {
    pub fn new(sources: Arc<RuntimeSources>) -> Self {
        Self { sources }
    }

    fn stages(snapshot: &EngineSnapshot) -> BTreeMap<&'static str, StageTotals> {
        let mut stages: BTreeMap<&'static str, StageTotals> = BTreeMap::new();
        for actor in &snapshot.actors {
            let totals = stages.entry(actor.stage).or_default();
            totals.restarts += actor.restarts_total;
            totals.depth += actor.mailbox_depth as u64;
            totals.capacity += actor.mailbox_capacity as u64;
        }
        stages
    }
}

impl fmt::Debug for RuntimeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuntimeCollector")
    }
}

/// One labelled value per stage under one metric name.
fn per_stage<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl Iterator<Item = (&'static str, M)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (stage, value) in values {
        value.encode(metric.encode_family(&[("stage", stage)])?)?;
    }
    Ok(())
}

/// One unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value as i64).encode(metric)
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let engine = self.sources.engine.get().map(|view| view());
        let stages = engine.as_ref().map(Self::stages).unwrap_or_default();
        if !stages.is_empty() {
            let restarts = stages
                .iter()
                .map(|(s, t)| (*s, ConstCounter::new(t.restarts)));
            per_stage(
                &mut encoder,
                "pixmill_actor_restarts",
                "Actor restarts since start, per stage",
                MetricType::Counter,
                restarts,
            )?;
            let depth = stages
                .iter()
                .map(|(s, t)| (*s, ConstGauge::new(t.depth as i64)));
            per_stage(
                &mut encoder,
                "pixmill_stage_mailbox_depth",
                "Jobs held by each stage now",
                MetricType::Gauge,
                depth,
            )?;
            let capacity = stages
                .iter()
                .map(|(s, t)| (*s, ConstGauge::new(t.capacity as i64)));
            per_stage(
                &mut encoder,
                "pixmill_stage_mailbox_capacity",
                "Jobs each stage can hold",
                MetricType::Gauge,
                capacity,
            )?;
        }
        if let Some(engine) = &engine {
            gauge(
                &mut encoder,
                "pixmill_renders_hung",
                "Renders given up on after engine.max_job_time that still run on a thread of their own; restart the process if it stays above 0",
                engine.renders_hung,
            )?;
        }
        let sources = &self.sources;
        let in_use = sources
            .upload_capacity
            .saturating_sub(sources.upload_slots.available_permits());
        gauge(
            &mut encoder,
            "pixmill_upload_slots_in_use",
            "Uploads being received now",
            in_use,
        )?;
        gauge(
            &mut encoder,
            "pixmill_upload_slots",
            "Uploads this gateway receives at once at most",
            sources.upload_capacity,
        )?;
        Ok(())
    }
}
