//! Live counters for every supervised actor, read by the operators' endpoint and metrics.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Restarts within this window count as "recent".
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorState {
    Starting,
    Running,
    Restarting,
    Stopped,
}

impl ActorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct Mutable {
    state: ActorState,
    recent_restarts: VecDeque<Instant>,
    last_failure: Option<(DateTime<Utc>, String)>,
}

/// One actor's counters. The actor is identified by its stage and slot, which survive
/// restarts; the ractor actor behind it changes on each restart.
#[derive(Debug)]
pub struct ActorStats {
    pub name: String,
    pub stage: &'static str,
    restarts: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    mutable: Mutex<Mutable>,
}

/// A point-in-time copy of one actor's counters.
#[derive(Clone, Debug)]
pub struct ActorSnapshot {
    pub name: String,
    pub stage: &'static str,
    pub state: ActorState,
    pub restarts_total: u64,
    pub restarts_recent: u64,
    pub mailbox_depth: usize,
    pub mailbox_capacity: usize,
    pub jobs_in_flight: usize,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure_reason: Option<String>,
}

impl ActorStats {
    pub fn new(name: String, stage: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            stage,
            restarts: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            mutable: Mutex::new(Mutable {
                state: ActorState::Starting,
                recent_restarts: VecDeque::new(),
                last_failure: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.mutable.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_state(&self, state: ActorState) {
        self.lock().state = state;
    }

    /// Records a failure and returns how many restarts happened within the recent window,
    /// this one included.
    pub fn record_failure(&self, reason: String) -> usize {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let mut m = self.lock();
        let now = Instant::now();
        m.recent_restarts.push_back(now);
        while m
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > RECENT_WINDOW)
        {
            m.recent_restarts.pop_front();
        }
        m.state = ActorState::Restarting;
        m.last_failure = Some((Utc::now(), reason));
        m.recent_restarts.len()
    }

    pub fn job_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn job_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, depth: usize, capacity: usize) -> ActorSnapshot {
        let m = self.lock();
        let now = Instant::now();
        let recent = m
            .recent_restarts
            .iter()
            .filter(|t| now.duration_since(**t) <= RECENT_WINDOW)
            .count();
        ActorSnapshot {
            name: self.name.clone(),
            stage: self.stage,
            state: m.state,
            restarts_total: self.restarts.load(Ordering::Relaxed),
            restarts_recent: recent as u64,
            mailbox_depth: depth,
            mailbox_capacity: capacity,
            jobs_in_flight: depth,
            jobs_done: self.done.load(Ordering::Relaxed),
            jobs_failed: self.failed.load(Ordering::Relaxed),
            last_failure_at: m.last_failure.as_ref().map(|(at, _)| *at),
            last_failure_reason: m.last_failure.as_ref().map(|(_, r)| r.clone()),
        }
    }
}
