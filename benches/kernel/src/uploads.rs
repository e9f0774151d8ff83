//! `uploads --base URL --tokens FILE --bodies FILE --per-client N [--timeout-s S]`: the upload
//! clients of `benches/e2e.py`'s latency phase.
//!
//! One client per line of `--tokens` (one owner each), each on one kept-alive connection,
//! sending `--per-client` uploads back to back; client `c`'s `k`-th upload is body
//! `(c + k) % bodies`, where each line of `--bodies` is `<content type>\t<file>` (a whole
//! multipart form, as the harness built it). Every answered upload is one JSON line on
//! stdout, flushed at once so the harness can start watching the image:
//! `{"client": c, "id": "...", "seconds": s}`, `s` from the request's start (the connection
//! included, when one is opened, and a failed first attempt, when there was one) to the last
//! byte of the `202`. Anything but a `202`, or no answer within `--timeout-s` (70 by
//! default), ends the run with a message and a failure status.
//!
//! Why not the harness's Python threads: sixteen of them share one interpreter lock, so a
//! thread whose answer has arrived may wait for the lock before it stops its clock, and they
//! took a quarter of a core on the cores under test. Here one thread drives every connection
//! from one event loop. Measured side by side (BENCHMARKS.md): a few milliseconds off the
//! p99, a fifth less CPU; the requests on the wire are the same.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{flag, BoxError};

/// How long an upload may wait for its answer unless `--timeout-s` says otherwise: the
/// Python clients' timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(70);

/// A prepared upload: the form's content type and its bytes.
struct Form {
    content_type: String,
    bytes: Bytes,
}

/// What every client shares.
struct Plan {
    /// `host:port`, for the connection and the `Host` header.
    authority: String,
    forms: Vec<Form>,
    per_client: usize,
    /// Bound on each attempt: connecting, sending and reading the whole answer.
    timeout: Duration,
}

type Connection = Option<SendRequest<Full<Bytes>>>;

pub fn run(args: &[String]) -> Result<(), BoxError> {
    let base = flag(args, "--base").ok_or("--base is required")?;
    let authority = base
        .strip_prefix("http://")
        .ok_or("--base must be http://host:port")?
        .trim_end_matches('/')
        .to_owned();
    let tokens = read_lines(flag(args, "--tokens").ok_or("--tokens is required")?)?;
    let forms = read_lines(flag(args, "--bodies").ok_or("--bodies is required")?)?
        .iter()
        .enumerate()
        .map(|(i, line)| read_form(line).map_err(|e| format!("--bodies line {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let per_client: usize = flag(args, "--per-client")
        .ok_or("--per-client is required")?
        .parse()
        .map_err(|e| format!("--per-client: {e}"))?;
    let timeout = match flag(args, "--timeout-s") {
        None => DEFAULT_TIMEOUT,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .filter(|d| !d.is_zero())
            .ok_or("--timeout-s must be a number of seconds above 0")?,
    };
    if tokens.is_empty() || forms.is_empty() {
        return Err("--tokens and --bodies need a line each at least".into());
    }
    let plan = Arc::new(Plan {
        authority,
        forms,
        per_client,
        timeout,
    });

    // One thread: the clients' work is a few system calls per upload, and a second thread
    // would only take more of the cores the server under test runs on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut clients = tokio::task::JoinSet::new();
        for (index, token) in tokens.into_iter().enumerate() {
            clients.spawn(client(index, format!("Bearer {token}"), Arc::clone(&plan)));
        }
        while let Some(ended) = clients.join_next().await {
            ended.map_err(|e| format!("a client task failed: {e}"))??;
        }
        Ok(())
    })
}

/// One client's uploads, back to back on one connection.
async fn client(index: usize, authorization: String, plan: Arc<Plan>) -> Result<(), BoxError> {
    let mut connection = None;
    for k in 0..plan.per_client {
        let form = &plan.forms[(index + k) % plan.forms.len()];
        let started = Instant::now();
        let (status, answer) = upload(&mut connection, &plan, &authorization, form)
            .await
            .map_err(|e| format!("client {index}: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        if status != StatusCode::ACCEPTED {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
            return Err(format!("client {index}: upload answered {status}: {text}").into());
        }
        let document: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("client {index}: the 202's body is not JSON: {e}"))?;
        let id = document["id"]
            .as_str()
            .ok_or_else(|| format!("client {index}: the 202's body has no id"))?;
        let line = serde_json::json!({"client": index, "id": id, "seconds": seconds});
        // A blocking write on the runtime's only thread: a line is a few dozen bytes and the
        // harness reads the pipe as lines arrive, so it does not fill; the clock has stopped.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// Why one attempt at an upload failed.
enum Failure {
    /// The connection broke (refused, reset, closed before the answer was whole).
    Broken(BoxError),
    /// No whole answer within the plan's timeout.
    NoAnswer(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Broken(error) => write!(f, "{error}"),
            Failure::NoAnswer(timeout) => write!(f, "no answer within {timeout:?}"),
        }
    }
}

/// Sends one upload on the client's connection, opening one when there is none.
///
/// A kept-alive connection can break under a request because the server closed it as the
/// request went out (an idle close, a restart); the upload is then sent once more on a new
/// connection. A failure on a new connection, or no answer in time, is not retried: the
/// server is in trouble, and that ends the run. Whether the server had read the broken
/// request cannot be told from here; if it had, that image is stored twice and only the
/// answered id is watched: the phase gets an unwatched image more, never one less.
async fn upload(
    connection: &mut Connection,
    plan: &Plan,
    authorization: &str,
    form: &Form,
) -> Result<(StatusCode, Bytes), BoxError> {
    let reused = connection.is_some();
    match attempt(connection, plan, authorization, form).await {
        Ok(answer) => Ok(answer),
        Err(Failure::Broken(first)) if reused => attempt(connection, plan, authorization, form)
            .await
            .map_err(|again| format!("{again} (on a new connection, after {first})").into()),
        Err(failure) => Err(failure.to_string().into()),
    }
}

/// One try: connects if needed, sends, reads the whole answer. The connection is dropped
/// after any failure, so the next try opens a new one.
async fn attempt(
    connection: &mut Connection,
    plan: &Plan,
    authorization: &str,
    form: &Form,
) -> Result<(StatusCode, Bytes), Failure> {
    let exchange = async {
        let sender = match connection {
            Some(sender) => sender,
            None => connection.insert(connect(&plan.authority).await?),
        };
        let request = Request::post("/v1/images")
            .header(HOST, &plan.authority)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, &form.content_type)
            .body(Full::new(form.bytes.clone()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    let result = match tokio::time::timeout(plan.timeout, exchange).await {
        Ok(Ok(answer)) => return Ok(answer),
        Ok(Err(error)) => Failure::Broken(error),
        Err(_) => Failure::NoAnswer(plan.timeout),
    };
    *connection = None;
    Err(result)
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's I/O runs beside the client and ends when the sender is dropped; its
    // errors reach the client through `send_request`, so the task's own result is not needed.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn read_lines(path: &str) -> Result<Vec<String>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn read_form(line: &str) -> Result<Form, BoxError> {
    let (content_type, path) = line
        .split_once('\t')
        .ok_or("not `<content type>\\t<file>`")?;
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(Form {
        content_type: content_type.to_owned(),
        bytes: Bytes::from(bytes),
    })
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const ANSWER: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 10\r\n\r\n{\"id\":\"x\"}";

    /// A test's bound, so a hang fails instead of stalling the suite.
    async fn within<T>(test: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), test)
            .await
            .expect("the test took longer than 20 s")
    }

    /// One request off `stream`: its head (request line and headers) and its body.
    async fn read_request(stream: &mut TcpStream) -> (String, Vec<u8>) {
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the client closed before its request's head was complete"
            );
            received.extend_from_slice(&chunk[..n]);
            if let Some(i) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8(received[..head_end].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let l = l.to_ascii_lowercase();
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length header");
        let mut body = received[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client closed before its body was complete");
            body.extend_from_slice(&chunk[..n]);
        }
        (head, body)
    }

    /// What a test server saw: the requests it read, and its listener, kept so the test can
    /// check that no further connection came; and the connections it holds open unanswered.
    struct Seen {
        requests: Vec<(String, Vec<u8>)>,
        listener: TcpListener,
        _held: Vec<TcpStream>,
    }

    impl Seen {
        /// Called once the client is done: a connection it opened would be waiting by now.
        async fn assert_no_more_connections(self) -> Vec<(String, Vec<u8>)> {
            let another =
                tokio::time::timeout(Duration::from_millis(100), self.listener.accept()).await;
            assert!(
                another.is_err(),
                "the client opened one connection too many"
            );
            self.requests
        }
    }

    /// A server on loopback whose `n`-th connection answers `answers[n]` requests and is then
    /// closed (`Some(0)`: reads one request and closes without answering), or, with `None`,
    /// reads one request and holds the connection open without answering.
    async fn server(answers: Vec<Option<usize>>) -> (String, tokio::task::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut requests, mut held) = (Vec::new(), Vec::new());
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                match answer {
                    Some(0) => requests.push(read_request(&mut stream).await),
                    Some(n) => {
                        for _ in 0..n {
                            requests.push(read_request(&mut stream).await);
                            stream.write_all(ANSWER).await.unwrap();
                        }
                    }
                    None => {
                        requests.push(read_request(&mut stream).await);
                        held.push(stream);
                    }
                }
            }
            Seen {
                requests,
                listener,
                _held: held,
            }
        });
        (authority, task)
    }

    fn plan(authority: String, timeout: Duration) -> Plan {
        Plan {
            authority,
            forms: Vec::new(),
            per_client: 0,
            timeout,
        }
    }

    fn form() -> Form {
        Form {
            content_type: "multipart/form-data; boundary=b".to_owned(),
            bytes: (0..300_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into(),
        }
    }

    #[tokio::test]
    async fn uploads_share_a_kept_alive_connection_and_go_again_once_when_the_server_closed_it() {
        within(async {
            // Two answers on the first connection, then a close: the third upload finds its
            // connection gone and is sent on a second one.
            let (authority, server) = server(vec![Some(2), Some(1)]).await;
            let plan = plan(authority.clone(), DEFAULT_TIMEOUT);
            let form = form();
            let mut connection = None;
            for _ in 0..3 {
                let (status, answer) = upload(&mut connection, &plan, "Bearer t0", &form)
                    .await
                    .unwrap();
                assert_eq!(status, StatusCode::ACCEPTED);
                assert_eq!(&answer[..], b"{\"id\":\"x\"}");
            }
            let requests = server.await.unwrap().assert_no_more_connections().await;
            assert_eq!(requests.len(), 3);
            for (head, body) in requests {
                let head = head.to_ascii_lowercase();
                assert!(head.starts_with("post /v1/images http/1.1\r\n"), "{head}");
                assert!(head.contains("\r\nauthorization: bearer t0\r\n"), "{head}");
                assert!(
                    head.contains("\r\ncontent-type: multipart/form-data; boundary=b\r\n"),
                    "{head}"
                );
                assert!(
                    head.contains(&format!("\r\nhost: {authority}\r\n")),
                    "{head}"
                );
                assert_eq!(body, form.bytes, "the body arrived changed");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_new_connection_that_breaks_is_not_tried_again() {
        within(async {
            let (authority, server) = server(vec![Some(0)]).await;
            let plan = plan(authority, DEFAULT_TIMEOUT);
            let outcome = upload(&mut None, &plan, "Bearer t0", &form()).await;
            assert!(
                outcome.is_err(),
                "an upload the server never answered succeeded"
            );
            let seen = server.await.unwrap();
            assert_eq!(seen.assert_no_more_connections().await.len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn an_upload_without_an_answer_fails_after_the_timeout() {
        within(async {
            let (authority, server) = server(vec![None]).await;
            let plan = plan(authority, Duration::from_millis(300));
            let error = upload(&mut None, &plan, "Bearer t0", &form())
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains("no answer within 300ms"), "{error}");
            let seen = server.await.unwrap();
            assert_eq!(seen.assert_no_more_connections().await.len(), 1);
        })
        .await;
    }
}
