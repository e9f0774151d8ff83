//! The CPU pool: long-lived threads that run the transforms, one per transformer slot.
//!
//! Not tokio's blocking pool, for three reasons. That pool also runs the gateway's file,
//! SQLite and probe calls, so a render and an upload took turns on the same threads and at
//! the same priority. Its threads come and go, so each render landed on a different thread
//! (cold caches, another malloc arena) and had to lower and restore its priority per job.
//! And it is sized for waiting, not for cores. Here each thread lowers its own priority
//! once, for life (see `priority`), so request handling in the same process goes first,
//! and the gateway's blocking work never runs in the background.
//!
//! The pool queues at most one task per thread: the transformer actors, one per slot, each
//! wait for their render, so the bound is never what holds a caller back.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

mod priority;

type Task = Box<dyn FnOnce() + Send>;

/// A handle on the pool; the threads end when the last handle is dropped, after the task
/// each is running. They are not joined: a render still running when the engine has
/// stopped ends on its own, or with the process.
#[derive(Clone)]
pub struct CpuPool {
    tasks: mpsc::Sender<Task>,
}

/// Why a task gave no value.
pub enum CpuPoolError {
    /// The task panicked; the payload, to resume the panic in the caller.
    Panicked(Box<dyn Any + Send>),
    /// The pool's threads are gone. Not expected while the pool has a handle (its threads
    /// catch every panic); reported rather than assumed away.
    Closed,
}

impl CpuPool {
    /// Starts `threads` threads (at least one), named `pixmill-cpu-N`.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (tasks, queue) = mpsc::channel::<Task>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("pixmill-cpu-{n}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { tasks })
    }

    /// Runs `task` on a pool thread and waits for its value. A panic inside it is caught
    /// there (the thread lives on) and handed back as [`CpuPoolError::Panicked`].
    pub async fn run<T, F>(&self, task: F) -> Result<T, CpuPoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, value) = oneshot::channel();
        let task: Task = Box::new(move || {
            // The receiver is gone only if the caller stopped waiting; nothing to tell it.
            let _ = done.send(catch_unwind(AssertUnwindSafe(task)));
        });
        self.tasks
            .send(task)
            .await
            .map_err(|_| CpuPoolError::Closed)?;
        match value.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(CpuPoolError::Panicked(panic)),
            Err(_) => Err(CpuPoolError::Closed),
        }
    }
}

/// One pool thread: background priority for life, then tasks until the pool is dropped.
fn work(queue: &Mutex<mpsc::Receiver<Task>>) {
    priority::lower_this_thread();
    loop {
        // One idle thread waits on the queue, the others on the lock; a task is short work
        // next to a render, so the hand-over costs nothing measurable.
        let task = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match task {
            Some(task) => task(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_named_pool_threads_and_return_their_value() {
        let pool = CpuPool::start(2).expect("threads start");
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .ok()
            .flatten();
        assert!(name.is_some_and(|n| n.starts_with("pixmill-cpu-")));
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_the_pool_keeps_working() {
        let pool = CpuPool::start(1).expect("threads start");
        let panicked = pool.run(|| -> u32 { panic!("codec bug") }).await;
        assert!(matches!(panicked, Err(CpuPoolError::Panicked(_))));
        // The single thread survived the panic and takes the next task.
        assert_eq!(pool.run(|| 7).await.ok(), Some(7));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pool_threads_run_at_idle_priority_and_the_caller_does_not() {
        // SAFETY: sched_getscheduler with pid 0 reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let pool = CpuPool::start(1).expect("threads start");
        let before = policy();
        let inside = pool.run(policy).await.ok();
        assert_eq!(inside, Some(libc::SCHED_IDLE));
        assert_eq!(policy(), before);
        assert_ne!(before, libc::SCHED_IDLE);
    }
}
