//! The `JobQueue` contract, written once over `Arc<dyn JobQueue>` and run against the
//! in-process queue and RabbitMQ (a queue of its own per test), plus what only RabbitMQ can
//! show: malformed messages on the wire and recovery from a lost connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pixmill::backends::memory_queue::MemoryQueue;
use pixmill::backends::rabbitmq::{RabbitConfig, RabbitQueue};
use pixmill_actors::ports::{Delivery, JobMessage, JobQueue, JobStream, Settlement};
use pixmill_actors::{ImageId, Owner};

use crate::service_env::{service_url, unavailable, unique_name};

/// Generous: only a broken queue takes this long, and then the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Awaits `future`, failing the test if it never completes.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

pub fn job() -> JobMessage {
    JobMessage {
        image_id: ImageId::new(),
        owner: Owner::parse("alice").unwrap(),
        trace_id: Some(unique_name("req-")),
    }
}

/// The next delivery, skipping the `Err` items a reconnecting stream reports.
pub async fn next_delivery(stream: &mut Box<dyn JobStream>) -> Delivery {
    within("a delivery", async {
        loop {
            match stream.next().await {
                Some(Ok(delivery)) => return delivery,
                Some(Err(e)) => eprintln!("stream reported: {e}"),
                None => panic!("the stream ended"),
            }
        }
    })
    .await
}

/// A queue for one test and what the contract needs to look behind it.
struct Fixture {
    queue: Arc<dyn JobQueue>,
    backend: Backend,
}

enum Backend {
    Memory(MemoryQueue),
    Rabbit(Box<rabbit::Scratch>),
}

impl Fixture {
    async fn dead_letters(&self) -> Vec<JobMessage> {
        match &self.backend {
            Backend::Memory(queue) => queue.dead_letters(),
            Backend::Rabbit(scratch) => scratch.drain_dead_letters().await,
        }
    }
}

async fn memory() -> Option<Fixture> {
    let queue = MemoryQueue::new();
    Some(Fixture {
        queue: Arc::new(queue.clone()),
        backend: Backend::Memory(queue),
    })
}

async fn rabbitmq() -> Option<Fixture> {
    let scratch = rabbit::Scratch::new().await?;
    let queue = RabbitQueue::connect(&scratch.config).await.unwrap();
    Some(Fixture {
        queue: Arc::new(queue),
        backend: Backend::Rabbit(Box::new(scratch)),
    })
}

async fn published_jobs_are_delivered_in_order_and_ack_removes_them(fixture: Fixture) {
    let queue = &fixture.queue;
    let (first, second) = (job(), job());
    queue.publish(&first).await.unwrap();
    queue.publish(&second).await.unwrap();

    let mut stream = queue.consume(8).await.unwrap();
    let a = next_delivery(&mut stream).await;
    let b = next_delivery(&mut stream).await;
    assert_eq!((&a.job, a.redelivered), (&first, false));
    assert_eq!((&b.job, b.redelivered), (&second, false));
    a.settle(Settlement::Ack).await.unwrap();
    b.settle(Settlement::Ack).await.unwrap();
    drop(stream);

    // Acked jobs are gone: a fresh consumer's first delivery is the next job published.
    let third = job();
    queue.publish(&third).await.unwrap();
    let mut stream = queue.consume(8).await.unwrap();
    let c = next_delivery(&mut stream).await;
    assert_eq!(c.job, third);
    c.settle(Settlement::Ack).await.unwrap();
}

async fn requeued_job_comes_back_redelivered(fixture: Fixture) {
    let queue = &fixture.queue;
    let job = job();
    queue.publish(&job).await.unwrap();
    let mut stream = queue.consume(4).await.unwrap();

    let delivery = next_delivery(&mut stream).await;
    delivery.settle(Settlement::Requeue).await.unwrap();

    let again = next_delivery(&mut stream).await;
    assert_eq!((&again.job, again.redelivered), (&job, true));
    again.settle(Settlement::Ack).await.unwrap();
}

async fn dropped_delivery_comes_back(fixture: Fixture) {
    let queue = &fixture.queue;
    let job = job();
    queue.publish(&job).await.unwrap();
    let mut stream = queue.consume(4).await.unwrap();

    // A stage that crashes while holding the delivery drops it unsettled.
    drop(next_delivery(&mut stream).await);

    let again = next_delivery(&mut stream).await;
    assert_eq!((&again.job, again.redelivered), (&job, true));
    again.settle(Settlement::Ack).await.unwrap();
}

async fn prefetch_bounds_unsettled_deliveries(fixture: Fixture) {
    let queue = &fixture.queue;
    let mut bounded = queue.consume(2).await.unwrap();
    let jobs = [job(), job(), job()];
    for job in &jobs {
        queue.publish(job).await.unwrap();
    }
    let held = [
        next_delivery(&mut bounded).await,
        next_delivery(&mut bounded).await,
    ];

    // With two unsettled, the bounded consumer must not get the third: a second consumer
    // does, while the first is still asking.
    let mut other = queue.consume(2).await.unwrap();
    let third = tokio::select! {
        biased;
        extra = bounded.next() => panic!("prefetch 2 exceeded: got {extra:?}"),
        delivery = next_delivery(&mut other) => delivery,
    };
    assert_eq!(third.job, jobs[2]);

    for delivery in held {
        delivery.settle(Settlement::Ack).await.unwrap();
    }
    third.settle(Settlement::Ack).await.unwrap();
}

async fn dead_lettered_job_lands_in_the_dead_letter_queue(fixture: Fixture) {
    let queue = &fixture.queue;
    let (poison, healthy) = (job(), job());
    queue.publish(&poison).await.unwrap();
    queue.publish(&healthy).await.unwrap();
    let mut stream = queue.consume(1).await.unwrap();

    let delivery = next_delivery(&mut stream).await;
    assert_eq!(delivery.job, poison);
    delivery.settle(Settlement::DeadLetter).await.unwrap();

    // The stream goes on with the next job, and the poison one never comes back.
    let next = next_delivery(&mut stream).await;
    assert_eq!(next.job, healthy);
    next.settle(Settlement::Ack).await.unwrap();
    let dead = within("the dead letter", async {
        loop {
            let dead = fixture.dead_letters().await;
            if !dead.is_empty() {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(dead, vec![poison]);
}

async fn unsettled_deliveries_come_back_when_the_consumer_is_dropped(fixture: Fixture) {
    let queue = &fixture.queue;
    let jobs = [job(), job()];
    for job in &jobs {
        queue.publish(job).await.unwrap();
    }
    let mut stream = queue.consume(4).await.unwrap();
    let held = [
        next_delivery(&mut stream).await,
        next_delivery(&mut stream).await,
    ];

    drop(stream);

    let mut stream = queue.consume(4).await.unwrap();
    let again = [
        next_delivery(&mut stream).await,
        next_delivery(&mut stream).await,
    ];
    for (delivery, job) in again.iter().zip(&jobs) {
        assert_eq!((&delivery.job, delivery.redelivered), (job, true));
    }

    // The old deliveries' consumer is gone: settling them succeeds and changes nothing.
    for delivery in held {
        delivery.settle(Settlement::Ack).await.unwrap();
    }
    let [first, second] = again;
    first.settle(Settlement::Requeue).await.unwrap();
    let back = next_delivery(&mut stream).await;
    assert_eq!(back.job, jobs[0]);
    back.settle(Settlement::Ack).await.unwrap();
    second.settle(Settlement::Ack).await.unwrap();
}

/// What a shutting-down consumer does: it takes nothing more, yet the jobs it holds are
/// still settled on it, so they are not handed to another consumer meanwhile.
async fn a_stream_that_stopped_taking_still_settles_what_it_holds(fixture: Fixture) {
    let queue = &fixture.queue;
    let (first, second) = (job(), job());
    queue.publish(&first).await.unwrap();
    queue.publish(&second).await.unwrap();
    let mut leaving = queue.consume(1).await.unwrap();
    let held = next_delivery(&mut leaving).await;
    assert_eq!(held.job, first);

    within("stop_taking", leaving.stop_taking()).await;
    let mut staying = queue.consume(4).await.unwrap();
    held.settle(Settlement::Ack).await.unwrap();

    // The next job goes to the consumer still taking, and the settled one never comes back.
    let next = next_delivery(&mut staying).await;
    assert_eq!((&next.job, next.redelivered), (&second, false));
    next.settle(Settlement::Ack).await.unwrap();
    drop(leaving);
    let third = job();
    queue.publish(&third).await.unwrap();
    let after = next_delivery(&mut staying).await;
    assert_eq!(after.job, third, "a settled job came back");
    after.settle(Settlement::Ack).await.unwrap();
}

/// One `#[tokio::test]` per contract case, for one backend.
macro_rules! contract {
    ($fixture:path) => {
        contract!(@cases $fixture;
            published_jobs_are_delivered_in_order_and_ack_removes_them,
            requeued_job_comes_back_redelivered,
            dropped_delivery_comes_back,
            prefetch_bounds_unsettled_deliveries,
            dead_lettered_job_lands_in_the_dead_letter_queue,
            unsettled_deliveries_come_back_when_the_consumer_is_dropped,
            a_stream_that_stopped_taking_still_settles_what_it_holds,
        );
    };
    (@cases $fixture:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $fixture().await else { return };
                super::$case(fixture).await;
            }
        )+
    };
}

mod memory {
    use super::*;

    contract!(super::memory);

    #[tokio::test]
    async fn is_not_durable() {
        assert!(!MemoryQueue::new().is_durable());
    }
}

pub mod rabbit {
    use super::*;
    use lapin::options::{
        BasicGetOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions,
    };
    use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

    contract!(super::rabbitmq);

    /// A queue name of its own on the shared broker, and a side connection to look at it.
    /// Dropping it deletes the queue, its dead-letter queue and exchange.
    pub struct Scratch {
        pub config: RabbitConfig,
        _connection: Connection,
        channel: Channel,
    }

    impl Scratch {
        pub async fn new() -> Option<Self> {
            let url = service_url("RabbitMQ", "PIXMILL_TEST_AMQP_URL", Some(DEFAULT_AMQP_URL))?;
            let mut config = RabbitConfig::new(url);
            config.queue = unique_name("pixmill-test-");
            config.connection_name = config.queue.clone();

            let connection =
                match Connection::connect(&config.url, ConnectionProperties::default()).await {
                    Ok(connection) => connection,
                    Err(e) => {
                        unavailable("RabbitMQ", e);
                        return None;
                    }
                };
            let channel = connection.create_channel().await.unwrap();
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await
                .unwrap();
            Some(Self {
                config,
                _connection: connection,
                channel,
            })
        }

        fn dead_queue(&self) -> String {
            format!("{}.dead", self.config.queue)
        }

        /// Takes everything in `<queue>.dead`, as job messages.
        pub async fn drain_dead_letters(&self) -> Vec<JobMessage> {
            self.drain_dead_payloads()
                .await
                .iter()
                .map(|payload| serde_json::from_slice(payload).unwrap())
                .collect()
        }

        async fn drain_dead_payloads(&self) -> Vec<Vec<u8>> {
            let mut payloads = Vec::new();
            let queue = self.dead_queue();
            while let Some(message) = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                payloads.push(message.delivery.data.clone());
            }
            payloads
        }

        /// Publishes raw bytes straight to the work queue, as a broken producer would, and
        /// waits until the broker has queued them.
        async fn publish_raw(&self, payload: &[u8]) {
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    self.config.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap();
            assert!(confirm.await.unwrap().is_ack());
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            // Drop cannot await and the test's runtime may be gone: clean up on a thread of
            // its own with a runtime of its own.
            let url = self.config.url.clone();
            let queue = self.config.queue.clone();
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let connection =
                        Connection::connect(&url, ConnectionProperties::default()).await?;
                    let channel = connection.create_channel().await?;
                    for name in [queue.clone(), format!("{queue}.dead")] {
                        channel
                            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                            .await?;
                    }
                    let dlx = format!("{queue}.dlx");
                    channel
                        .exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
                        .await
                })
            });
            if let Ok(Err(e)) = cleanup.join() {
                eprintln!("could not delete test queue {}: {e}", self.config.queue);
            }
        }
    }

    /// Closes, from the broker's side, every connection whose client-given name is `name`:
    /// a fault of the kind a broker restart or a network cut causes, on just these.
    async fn close_connections_named(name: &str) -> usize {
        // RabbitMQ 3.10 shows the name only inside `client_properties`; the quoted name,
        // unique per test, is enough to match a line on.
        let quoted = format!("\"{name}\"");
        tokio::task::spawn_blocking(move || {
            let listing = rabbitmqctl(&["list_connections", "-s", "pid", "client_properties"]);
            let pids: Vec<String> = listing
                .lines()
                .filter(|line| line.contains(&quoted))
                .filter_map(|line| line.split('\t').next())
                .map(str::to_owned)
                .collect();
            for pid in &pids {
                rabbitmqctl(&[
                    "close_connection",
                    pid,
                    "pixmill test: simulated connection loss",
                ]);
            }
            pids.len()
        })
        .await
        .unwrap()
    }

    /// Runs `rabbitmqctl` and returns what it printed; panics if it fails.
    fn rabbitmqctl(args: &[&str]) -> String {
        let output = std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_message_is_dead_lettered_and_the_stream_goes_on() {
        let Some(fixture) = super::rabbitmq().await else {
            return;
        };
        let Backend::Rabbit(scratch) = &fixture.backend else {
            unreachable!()
        };
        let mut stream = fixture.queue.consume(4).await.unwrap();
        let healthy = job();

        // Queued in this order, so the stream meets the malformed one first.
        scratch.publish_raw(b"{\"not\": \"a job\"").await;
        fixture.queue.publish(&healthy).await.unwrap();

        let delivery = next_delivery(&mut stream).await;
        assert_eq!(delivery.job, healthy);
        delivery.settle(Settlement::Ack).await.unwrap();
        let dead = within("the malformed message in the dead-letter queue", async {
            loop {
                let dead = scratch.drain_dead_payloads().await;
                if !dead.is_empty() {
                    return dead;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(dead, vec![b"{\"not\": \"a job\"".to_vec()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consumer_recovers_after_its_connection_is_closed() {
        let Some(fixture) = super::rabbitmq().await else {
            return;
        };
        let Backend::Rabbit(scratch) = &fixture.backend else {
            unreachable!()
        };
        let queue = &fixture.queue;
        let job = job();
        queue.publish(&job).await.unwrap();
        let mut stream = queue.consume(4).await.unwrap();
        let held = next_delivery(&mut stream).await;

        let consumer_name = format!("{}-consumer", scratch.config.connection_name);
        assert_eq!(close_connections_named(&consumer_name).await, 1);

        // The same stream reconnects by itself and gets the unacked job again.
        let again = next_delivery(&mut stream).await;
        assert_eq!((&again.job, again.redelivered), (&job, true));
        // The delivery from the dead channel settles as a no-op.
        held.settle(Settlement::Ack).await.unwrap();
        again.settle(Settlement::Ack).await.unwrap();

        let later = super::job();
        queue.publish(&later).await.unwrap();
        let delivery = next_delivery(&mut stream).await;
        assert_eq!(delivery.job, later);
        delivery.settle(Settlement::Ack).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publisher_recovers_after_its_connection_is_closed() {
        let Some(fixture) = super::rabbitmq().await else {
            return;
        };
        let Backend::Rabbit(scratch) = &fixture.backend else {
            unreachable!()
        };
        let queue = &fixture.queue;
        queue.publish(&job()).await.unwrap();

        let publisher_name = format!("{}-publisher", scratch.config.connection_name);
        assert_eq!(close_connections_named(&publisher_name).await, 1);

        // Publishes during the outage fail fast and say so; one soon goes through again.
        let job = job();
        within("a publish to succeed after reconnecting", async {
            loop {
                match within("one publish attempt", queue.publish(&job)).await {
                    Ok(()) => return,
                    Err(e) => {
                        assert!(e.is_transient(), "{e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
        .await;
        let mut stream = queue.consume(4).await.unwrap();
        let first = next_delivery(&mut stream).await;
        first.settle(Settlement::Ack).await.unwrap();
        let second = next_delivery(&mut stream).await;
        assert_eq!(second.job, job);
        second.settle(Settlement::Ack).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_to_an_unreachable_broker_fails_fast_as_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = RabbitConfig::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));

        let error = within("connect to fail", RabbitQueue::connect(&config))
            .await
            .err()
            .unwrap();

        assert!(error.is_transient(), "{error}");
    }
}
