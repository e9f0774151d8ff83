//! Group commit for the embedded store: one thread owns the writing connection and commits
//! every write that arrived while the previous commit was flushing in one transaction.
//!
//! Why: with `synchronous = FULL` each commit waits for the disk to flush the WAL, and SQLite
//! has one writer, so one write per commit caps the whole process at one flush per write.
//! An upload writes twice (its row, then clearing its dispatch mark) and a job twice more
//! (claim, result): at 16 concurrent uploads the writes queued behind each other's flushes
//! for tens of milliseconds (BENCHMARKS.md). Batched, a flush carries every write that is
//! waiting, as PostgreSQL's own group commit does.
//!
//! Each write runs inside its own savepoint, in arrival order, so it sees the writes before
//! it and fails alone: a write whose statement fails (or panics) is rolled back to its
//! savepoint and the rest of the batch still commits. A caller hears back only after the
//! batch's commit returned, so an acknowledged write is on disk exactly as before. If the
//! transaction cannot begin, or SQLite rolled it back whole (a full disk, an I/O error),
//! every write in the batch gets that error and none of them applied; if the commit itself
//! fails, or a write ended the transaction on its own (a COMMIT inside it: a bug), every
//! write gets the error with its outcome unknown (the WAL may still hold it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use pixmill_actors::ports::{BackendError, ErrorKind};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{execute, sql_error, BACKEND};

/// Most writes one transaction carries; the rest wait for the next flush.
const MAX_BATCH: usize = 256;

/// Sends writes to the committing thread. Dropping the last handle ends the thread, which
/// closes the connection.
#[derive(Clone)]
pub(super) struct Committer {
    queue: mpsc::Sender<Box<dyn Write>>,
    /// Batches committed, for the tests' look at the batching.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

impl Committer {
    /// Starts the committing thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (queue, writes) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("sqlite-commit".into())
            .spawn(move || commit_loop(&conn, &writes, &counted))?;
        Ok(Self {
            queue,
            #[cfg(test)]
            commits,
        })
    }

    /// Runs `op` in the next batch; answers once the batch is committed.
    pub async fn write<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let write = Pending {
            op: Some(op),
            outcome: None,
            reply,
        };
        self.queue
            .send(Box::new(write))
            .map_err(|_| stopped().not_applied())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> BackendError {
    BackendError::new(
        BACKEND,
        ErrorKind::Unavailable,
        "the sqlite writer thread stopped",
    )
}

/// One queued write, type-erased so one channel carries every kind.
trait Write: Send {
    /// Runs the write inside the batch's transaction.
    fn run(&mut self, conn: &Connection) -> Result<(), SavepointLost>;
    /// Answers the caller: the write's own outcome if the batch committed, else `failed`.
    fn finish(self: Box<Self>, failed: Option<&BackendError>);
}

/// The batch's transaction can no longer be trusted, so it must be abandoned whole.
enum SavepointLost {
    /// Rolling a write back to its savepoint (or releasing it) failed.
    Failed(rusqlite::Error),
    /// SQLite rolled the whole transaction back on this error.
    RolledBack(rusqlite::Error),
    /// A write ended the transaction itself.
    Unknown,
}

struct Pending<T, F> {
    op: Option<F>,
    outcome: Option<Result<T, BackendError>>,
    reply: oneshot::Sender<Result<T, BackendError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Result<(), SavepointLost> {
        let Some(op) = self.op.take() else {
            return Ok(());
        };
        if let Err(error) = execute(conn, "SAVEPOINT pixmill_write", []) {
            if conn.is_autocommit() {
                // The batch's transaction is gone with it.
                return Err(SavepointLost::Failed(error));
            }
            self.outcome = Some(Err(sql_error(error).not_applied()));
            return Ok(());
        }
        let result = catch_unwind(AssertUnwindSafe(|| op(conn)));
        if conn.is_autocommit() {
            return Err(match result {
                // SQLite rolls the whole transaction back on these errors: nothing of the
                // batch applied.
                Ok(Err(error)) if rolls_back_everything(&error) => SavepointLost::RolledBack(error),
                // The write ended the transaction itself (a COMMIT or ROLLBACK of its own):
                // what of the batch reached the disk is unknown.
                _ => SavepointLost::Unknown,
            });
        }
        let outcome = match result {
            Ok(Ok(value)) => {
                execute(conn, "RELEASE pixmill_write", []).map_err(SavepointLost::Failed)?;
                Ok(value)
            }
            Ok(Err(error)) => {
                undo(conn)?;
                Err(sql_error(error).not_applied())
            }
            Err(_) => {
                undo(conn)?;
                tracing::error!("a metadata write panicked; it was rolled back");
                Err(
                    BackendError::new(BACKEND, ErrorKind::Internal, "a metadata write panicked")
                        .not_applied(),
                )
            }
        };
        self.outcome = Some(outcome);
        Ok(())
    }

    fn finish(self: Box<Self>, failed: Option<&BackendError>) {
        let answer = match (failed, self.outcome) {
            (None, Some(outcome)) => outcome,
            (Some(error), _) => Err(copy(error)),
            (None, None) => Err(BackendError::new(
                BACKEND,
                ErrorKind::Internal,
                "a write was never run",
            )),
        };
        // The caller may have gone (its request was cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// Errors on which SQLite rolls the whole transaction back by itself.
fn rolls_back_everything(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as Code;
    matches!(
        error.sqlite_error_code(),
        Some(
            Code::DiskFull
                | Code::SystemIoFailure
                | Code::OutOfMemory
                | Code::DatabaseBusy
                | Code::OperationInterrupted
        )
    )
}

/// Rolls the whole batch back after [`SavepointLost`]. The batch certainly changed nothing
/// only if this rollback undid it; a write that ended the transaction itself may have
/// committed part of it.
fn abandon(conn: &Connection, lost: SavepointLost) -> BackendError {
    let rolled_back = !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_ok();
    let error = match lost {
        SavepointLost::RolledBack(error) => return sql_error(error).not_applied(),
        SavepointLost::Failed(error) => sql_error(error),
        SavepointLost::Unknown => {
            tracing::error!("a metadata write ended the batch's transaction itself");
            BackendError::new(
                BACKEND,
                ErrorKind::Internal,
                "a metadata write ended its batch's transaction",
            )
        }
    };
    if rolled_back {
        error.not_applied()
    } else {
        error
    }
}

/// Rolls the current write back to its savepoint and drops the savepoint.
fn undo(conn: &Connection) -> Result<(), SavepointLost> {
    conn.execute_batch("ROLLBACK TO pixmill_write; RELEASE pixmill_write")
        .map_err(SavepointLost::Failed)
}

/// The error once per caller ([`BackendError`] carries a boxed source, so it is not `Clone`).
fn copy(error: &BackendError) -> BackendError {
    let copied = BackendError::new(error.backend, error.kind, error.message.clone());
    if error.certainly_not_applied() {
        copied.not_applied()
    } else {
        copied
    }
}

fn commit_loop(conn: &Connection, writes: &mpsc::Receiver<Box<dyn Write>>, commits: &AtomicU64) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let failed = commit(conn, &mut batch).err();
        if failed.is_none() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        for write in batch {
            write.finish(failed.as_ref());
        }
    }
}

/// Runs the batch in one transaction and commits it.
fn commit(conn: &Connection, batch: &mut [Box<dyn Write>]) -> Result<(), BackendError> {
    // IMMEDIATE takes the write lock up front, waiting out (busy_timeout) another process
    // on the same file, as each write did on its own before.
    execute(conn, "BEGIN IMMEDIATE", []).map_err(|e| sql_error(e).not_applied())?;
    for write in batch.iter_mut() {
        if let Err(lost) = write.run(conn) {
            return Err(abandon(conn, lost));
        }
    }
    if let Err(error) = execute(conn, "COMMIT", []) {
        // A failed COMMIT may leave the transaction open (SQLITE_BUSY); end it so the next
        // batch can begin. Whether the flush reached the disk is unknown, so the error does
        // not say "not applied".
        let _ = conn.execute_batch("ROLLBACK");
        return Err(sql_error(error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committer() -> (Committer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        )
        .unwrap();
        (Committer::start(conn).unwrap(), dir)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_and_its_batch_commits() {
        let (committer, dir) = committer();
        committer
            .write(|c| c.execute("INSERT INTO t VALUES (1, 'one')", []))
            .await
            .unwrap();

        // Queued together, so they share a transaction: the duplicate key and the panic
        // roll back to their own savepoints only.
        let good = committer.write(|c| c.execute("INSERT INTO t VALUES (2, 'two')", []));
        let duplicate = committer.write(|c| c.execute("INSERT INTO t VALUES (1, 'again')", []));
        let panics = committer.write(|c| -> rusqlite::Result<usize> {
            c.execute("INSERT INTO t VALUES (3, 'three')", [])?;
            panic!("a bug in a write")
        });
        let after = committer.write(|c| c.execute("INSERT INTO t VALUES (4, 'four')", []));
        let (good, duplicate, panics, after) = tokio::join!(good, duplicate, panics, after);

        assert_eq!(good.unwrap(), 1);
        let duplicate = duplicate.unwrap_err();
        assert_eq!(duplicate.kind, ErrorKind::Rejected);
        assert!(duplicate.certainly_not_applied());
        assert_eq!(panics.unwrap_err().kind, ErrorKind::Internal);
        assert_eq!(after.unwrap(), 1);
        assert_eq!(
            count(&dir),
            3,
            "rows 1, 2 and 4; the panicking write's row 3 rolled back"
        );
    }

    #[tokio::test]
    async fn a_write_that_ends_the_transaction_itself_leaves_its_batch_unknown() {
        let (committer, dir) = committer();
        let rogue = committer
            .write(|c| c.execute_batch("COMMIT"))
            .await
            .unwrap_err();
        // Whatever shared its batch may have reached the disk with that COMMIT, so the
        // error must not claim the batch changed nothing.
        assert!(!rogue.certainly_not_applied(), "{}", rogue.message);

        // The next batch begins afresh.
        committer
            .write(|c| c.execute("INSERT INTO t VALUES (2, 'two')", []))
            .await
            .unwrap();
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_all_land() {
        let (committer, dir) = committer();
        let writes: Vec<_> = (0..200)
            .map(|k| {
                let committer = committer.clone();
                tokio::spawn(async move {
                    committer
                        .write(move |c| {
                            c.execute("INSERT INTO t VALUES (?1, 'v')", [k])?;
                            // What this write's transaction has seen of the table so far.
                            c.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
                        })
                        .await
                })
            })
            .collect();
        let mut seen = Vec::new();
        for write in writes {
            seen.push(write.await.unwrap().unwrap());
        }

        assert_eq!(count(&dir), 200);
        let commits = committer.commits.load(Ordering::Relaxed);
        assert!(commits < 50, "200 queued writes took {commits} commits");
        // Each write sees those before it in its batch, so every count from 1 to 200 occurs
        // exactly once: the writes ran one after another, never interleaved.
        seen.sort_unstable();
        assert_eq!(seen, (1..=200).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn a_stopped_writer_is_reported() {
        let (queue, writes) = mpsc::channel::<Box<dyn Write>>();
        drop(writes);
        let committer = Committer {
            queue,
            commits: Default::default(),
        };
        let error = committer.write(|_| Ok(())).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(error.certainly_not_applied());
    }
}
