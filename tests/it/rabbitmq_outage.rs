//! The RabbitMQ adapter through a broker outage, simulated with a TCP proxy of the test's
//! own on loopback (`support::proxy`): cutting the proxy kills the adapter's connections and
//! refuses new ones, as a broker restart would, without touching the shared broker.

use std::net::SocketAddr;
use std::time::Duration;

use pixmill::backends::rabbitmq::{RabbitConfig, RabbitQueue};
use pixmill_actors::ports::{ErrorKind, JobQueue, Settlement};

use crate::queue_contract::rabbit::Scratch;
use crate::queue_contract::{job, next_delivery, within};
use crate::support::proxy::Proxy;

/// The broker's address and the same URL pointed at the proxy instead.
fn via_proxy(url: &str, proxy_port: u16) -> (SocketAddr, String) {
    let uri: lapin::uri::AMQPUri = url.parse().unwrap();
    let upstream = format!("{}:{}", uri.authority.host, uri.authority.port);
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&upstream)
        .unwrap()
        .next()
        .unwrap();
    let user = &uri.authority.userinfo;
    let vhost = uri.vhost.replace('/', "%2f");
    let proxied = format!(
        "amqp://{}:{}@127.0.0.1:{proxy_port}/{vhost}",
        user.username, user.password
    );
    (upstream, proxied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_fail_fast_and_consumers_resume_after_an_outage() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let (upstream, _) = via_proxy(&scratch.config.url, 0);
    let mut proxy = Proxy::start(upstream).await;
    let config = RabbitConfig {
        url: via_proxy(&scratch.config.url, proxy.port).1,
        confirm_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ..scratch.config.clone()
    };
    let queue = RabbitQueue::connect(&config).await.unwrap();
    let mut stream = queue.consume(4).await.unwrap();
    let before = job();
    queue.publish(&before).await.unwrap();
    let held = next_delivery(&mut stream).await;

    proxy.cut().await;

    // During the outage every publish fails, transiently, and none hangs; once the lost
    // connection is noticed, they fail as Unavailable.
    let mut last = None;
    for _ in 0..3 {
        let error = within("a publish during the outage", queue.publish(&job()))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        last = Some(error.kind);
    }
    assert_eq!(last, Some(ErrorKind::Unavailable));

    // The consumer reports the outage and stays alive.
    match within("the consumer to report the outage", stream.next()).await {
        Some(Err(e)) => assert!(e.is_transient(), "{e}"),
        other => panic!("expected a transient error, got {other:?}"),
    }

    proxy.restore().await;

    let after = job();
    within("a publish after the outage", async {
        while let Err(e) = queue.publish(&after).await {
            assert!(e.is_transient(), "{e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The same stream resumes: the job held when the connection died comes again, flagged,
    // then the one published after. The old delivery settles as a no-op.
    let again = next_delivery(&mut stream).await;
    assert_eq!((&again.job, again.redelivered), (&before, true));
    let next = next_delivery(&mut stream).await;
    assert_eq!(next.job, after);
    held.settle(Settlement::Ack).await.unwrap();
    again.settle(Settlement::Ack).await.unwrap();
    next.settle(Settlement::Ack).await.unwrap();
}
