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
//!
//! A task that runs past its caller's limit ([`CpuPool::run_within`]) cannot be stopped (a
//! thread cannot be killed from outside, and a codec stuck in a loop never looks up), so it
//! is given up on: its thread is left to finish it and then ends, and a new thread takes
//! its place, so one image that hangs a decoder does not take a core from every job after
//! it. Given-up threads still hold their memory and, if they spin, a core at background
//! priority; the pool replaces at most as many as it has threads (past that, its capacity
//! shrinks until one ends: [`CpuPool::hung`] and [`CpuPool::serving`] feed the metrics and
//! readiness, which fails once no thread serves).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

mod priority;

/// A queued task: the closure (which catches its own panic, records that it finished and
/// sends its value) and the state its caller and its thread agree on.
struct Task {
    job: Box<dyn FnOnce() + Send>,
    state: Arc<Mutex<TaskState>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Queued,
    /// On a thread since then.
    Running(Instant),
    Finished,
    /// The caller stopped waiting: a queued task is skipped, and a running one's thread
    /// stops counting as the pool's until the task ends (see [`Threads`]).
    GivenUp,
}

/// How many threads the pool has, and in what state. Changed under one lock, rarely
/// (starting, giving up, a given-up task ending).
#[derive(Debug)]
struct Threads {
    /// Threads taking tasks: the pool's size, unless replacements ran out.
    serving: usize,
    /// Threads still running a task the pool gave up on.
    hung: usize,
}

/// What the pool's threads share.
struct Shared {
    queue: Mutex<mpsc::Receiver<Task>>,
    threads: Mutex<Threads>,
    /// The threads that take tasks when none hangs.
    size: usize,
    /// Numbers the next thread's name.
    named: AtomicUsize,
}

impl Shared {
    fn threads(&self) -> MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts one more serving thread, if the pool has fewer than its size and fewer than
    /// twice its size in all.
    fn refill(self: &Arc<Self>, threads: &mut Threads) {
        if threads.serving >= self.size || threads.serving + threads.hung >= 2 * self.size {
            return;
        }
        match spawn_thread(self) {
            Ok(()) => threads.serving += 1,
            Err(error) => {
                tracing::error!(%error, "the CPU pool could not start a thread; it renders on fewer threads");
            }
        }
    }
}

/// A handle on the pool; the threads end when the last handle is dropped, after the task
/// each is running. They are not joined: a render still running when the engine has
/// stopped ends on its own, or with the process.
#[derive(Clone)]
pub struct CpuPool {
    tasks: mpsc::Sender<Task>,
    shared: Arc<Shared>,
}

/// Why a task gave no value.
pub enum CpuPoolError {
    /// The task panicked; the payload, to resume the panic in the caller.
    Panicked(Box<dyn Any + Send>),
    /// The limit passed and the task was given up on (see the module's doc): after it had
    /// run for `ran` (its thread was replaced), or, with `None`, before a thread was free
    /// to start it (it never will be).
    TimedOut { ran: Option<Duration> },
    /// The pool's threads are gone. Not expected while the pool has a handle (its threads
    /// catch every panic); reported rather than assumed away.
    Closed,
}

impl CpuPool {
    /// Starts `threads` threads (at least one), named `pixmill-cpu-N`.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let size = threads.max(1);
        let (tasks, queue) = mpsc::channel::<Task>(size);
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            threads: Mutex::new(Threads {
                serving: 0,
                hung: 0,
            }),
            size,
            named: AtomicUsize::new(0),
        });
        for _ in 0..size {
            spawn_thread(&shared)?;
            shared.threads().serving += 1;
        }
        Ok(Self { tasks, shared })
    }

    /// Runs `task` on a pool thread and waits for its value. A panic inside it is caught
    /// there (the thread lives on) and handed back as [`CpuPoolError::Panicked`].
    pub async fn run<T, F>(&self, task: F) -> Result<T, CpuPoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.run_within(Duration::MAX, task).await
    }

    /// As [`run`](Self::run), but gives up on the task after `limit`, its time in the
    /// queue included: [`CpuPoolError::TimedOut`], with the task's thread replaced if it had
    /// started (see the module's doc).
    pub async fn run_within<T, F>(&self, limit: Duration, task: F) -> Result<T, CpuPoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, mut value) = oneshot::channel();
        let state = Arc::new(Mutex::new(TaskState::Queued));
        let finished = Arc::clone(&state);
        let job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(task));
            // Finished before the value is sent, so a caller whose limit passes meanwhile
            // finds it finished and takes the value instead of giving up.
            let mut state = lock(&finished);
            if let TaskState::Running(_) = *state {
                *state = TaskState::Finished;
            }
            drop(state);
            // The receiver is gone only if the caller stopped waiting; nothing to tell it.
            let _ = done.send(outcome);
        });
        let task = Task {
            job,
            state: Arc::clone(&state),
        };
        let waited = async {
            self.tasks
                .send(task)
                .await
                .map_err(|_| CpuPoolError::Closed)?;
            (&mut value).await.map_err(|_| CpuPoolError::Closed)
        };
        let outcome = match tokio::time::timeout(limit, waited).await {
            Ok(outcome) => outcome?,
            Err(_) => match self.give_up(&state) {
                Some(ran) => return Err(CpuPoolError::TimedOut { ran }),
                None => value.await.map_err(|_| CpuPoolError::Closed)?,
            },
        };
        outcome.map_err(CpuPoolError::Panicked)
    }

    /// Threads still running a task the pool gave up on (see the module's doc).
    pub fn hung(&self) -> usize {
        self.shared.threads().hung
    }

    /// Threads taking tasks, and how many it has when none hangs.
    pub fn serving(&self) -> (usize, usize) {
        (self.shared.threads().serving, self.shared.size)
    }

    /// Marks a task given up on, replacing its thread if it was running: how long it had
    /// run (`None` inside if it never started), or `None` if it had finished meanwhile (its
    /// value is on its way).
    fn give_up(&self, state: &Mutex<TaskState>) -> Option<Option<Duration>> {
        let mut state = lock(state);
        let ran = match *state {
            TaskState::Finished => return None,
            TaskState::Queued | TaskState::GivenUp => None,
            TaskState::Running(since) => {
                let mut threads = self.shared.threads();
                threads.serving -= 1;
                threads.hung += 1;
                self.shared.refill(&mut threads);
                if threads.serving < self.shared.size {
                    tracing::error!(hung = threads.hung, serving = threads.serving, threads = self.shared.size,
                        "a render hangs and its thread was not replaced (as many hang as the pool has threads, or a thread could not start); the pool renders on fewer threads until one ends: restart the process");
                } else {
                    tracing::warn!(hung = threads.hung,
                        "a render hangs; its thread is left to finish it and a new one takes its place");
                }
                Some(since.elapsed())
            }
        };
        *state = TaskState::GivenUp;
        Some(ran)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spawn_thread(shared: &Arc<Shared>) -> std::io::Result<()> {
    let n = shared.named.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("pixmill-cpu-{n}"))
        .spawn(move || work(&shared))
        .map(drop)
}

/// One pool thread: background priority for life, then tasks until the pool is dropped.
/// After a task it was given up on, the thread goes back to taking tasks only if the pool
/// is short of threads; otherwise it ends (its replacement serves).
fn work(shared: &Arc<Shared>) {
    priority::lower_this_thread();
    loop {
        // One idle thread waits on the queue, the others on the lock; a task is short work
        // next to a render, so the hand-over costs nothing measurable.
        let task = lock(&shared.queue).blocking_recv();
        let Some(Task { job, state }) = task else {
            return;
        };
        {
            let mut state = lock(&state);
            if *state == TaskState::GivenUp {
                continue;
            }
            *state = TaskState::Running(Instant::now());
        }
        job();
        if *lock(&state) == TaskState::GivenUp {
            let mut threads = shared.threads();
            threads.hung -= 1;
            let rejoins = threads.serving < shared.size;
            if rejoins {
                threads.serving += 1;
            }
            tracing::info!(rejoins, "a render given up on has ended");
            if !rejoins {
                return;
            }
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

    /// A task that blocks its thread until the returned sender is dropped or sent to.
    fn hanging() -> (std::sync::mpsc::Sender<()>, impl FnOnce() + Send + 'static) {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        (release, move || {
            let _ = hold.recv();
        })
    }

    const LIMIT: Duration = Duration::from_millis(50);

    async fn until_no_hung(pool: &CpuPool) {
        for _ in 0..200 {
            if pool.hung() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a released task never ended: {:?}", pool.shared.threads());
    }

    #[tokio::test]
    async fn a_task_past_its_limit_is_given_up_and_its_thread_replaced() {
        let pool = CpuPool::start(1).expect("threads start");
        let (release, hang) = hanging();
        let given_up = pool.run_within(LIMIT, hang).await;
        assert!(matches!(
            given_up,
            Err(CpuPoolError::TimedOut { ran: Some(_) })
        ));
        assert_eq!(pool.hung(), 1);
        // The only thread still hangs, yet the pool renders: on the replacement.
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert_eq!(name.ok().flatten().as_deref(), Some("pixmill-cpu-1"));

        drop(release);
        until_no_hung(&pool).await;
        let threads = pool.shared.threads();
        assert_eq!(
            (threads.serving, threads.hung),
            (1, 0),
            "the old thread ended"
        );
    }

    #[tokio::test]
    async fn a_given_up_task_reports_how_long_it_ran_not_how_long_it_waited() {
        let pool = CpuPool::start(1).expect("threads start");
        let (release_first, first) = hanging();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(first).await.is_ok() }
        });
        tokio::time::sleep(LIMIT).await;
        let (_release_second, second) = hanging();
        let limit = Duration::from_secs(3);
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run_within(limit, second).await }
        });
        // The second waits a second in the queue, then runs until its limit.
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(release_first);
        assert!(busy.await.expect("the first task's caller"));
        match waiting.await.expect("the second task's caller") {
            Err(CpuPoolError::TimedOut { ran: Some(ran) }) => assert!(
                ran < limit - Duration::from_millis(500),
                "{ran:?} counts the time it waited"
            ),
            other => panic!("not given up while running: {}", other.is_ok()),
        }
    }

    #[tokio::test]
    async fn a_task_given_up_before_it_started_never_runs() {
        let pool = CpuPool::start(1).expect("threads start");
        let (release, hang) = hanging();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(hang).await.is_ok() }
        });
        tokio::time::sleep(LIMIT).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let queued = pool
            .run_within(LIMIT, move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .await;
        assert!(matches!(queued, Err(CpuPoolError::TimedOut { ran: None })));
        assert_eq!(pool.hung(), 0, "nothing ran, so no thread was replaced");

        drop(release);
        assert!(busy.await.expect("the first task's caller"));
        assert_eq!(pool.run(|| 7).await.ok(), Some(7));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn replacements_stop_at_the_pool_size_and_a_freed_thread_rejoins() {
        let pool = CpuPool::start(1).expect("threads start");
        let (first, hang) = hanging();
        assert!(matches!(
            pool.run_within(LIMIT, hang).await,
            Err(CpuPoolError::TimedOut { ran: Some(_) })
        ));
        let (second, hang) = hanging();
        assert!(matches!(
            pool.run_within(LIMIT, hang).await,
            Err(CpuPoolError::TimedOut { ran: Some(_) })
        ));
        // Two threads hang, one of them the replacement: no third is started.
        assert_eq!(pool.hung(), 2);
        let queued = pool.run_within(LIMIT, || 7).await;
        assert!(matches!(queued, Err(CpuPoolError::TimedOut { ran: None })));

        // The first hung thread ends its task and serves again: the pool is short.
        drop(first);
        assert_eq!(pool.run(|| 7).await.ok(), Some(7));
        drop(second);
        until_no_hung(&pool).await;
        let threads = pool.shared.threads();
        assert_eq!((threads.serving, threads.hung), (1, 0));
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
