//! `uploads --base URL --tokens FILE --bodies FILE --per-client N`: the upload clients of
//! `benches/e2e.py`'s latency phase.
//!
//! One client per line of `--tokens` (one owner each), each on one kept-alive connection,
//! sending `--per-client` uploads back to back; client `c`'s `k`-th upload is body
//! `(c + k) % bodies`, where each line of `--bodies` is `<content type>\t<file>` (a whole
//! multipart form, as the harness built it). Every answered upload is one JSON line on
//! stdout, flushed at once so the harness can start watching the image:
//! `{"client": c, "id": "...", "seconds": s}`, `s` from the request's start (the connection
//! included, when one is opened) to the last byte of the `202`. Anything but a `202` ends the
//! run with a message and a failure status.
//!
//! Why not the harness's Python threads: sixteen of them share one interpreter lock, and a
//! thread whose answer has arrived waits for it before it can stop its clock. The server's
//! own request log once gave p99 67 ms where those threads measured 88 (BENCHMARKS.md). Here
//! one thread drives every connection from one event loop, and the clock stops in the task
//! that reads the answer; the requests on the wire are the same.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{flag, BoxError};

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
}

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
        .map(|line| read_form(line))
        .collect::<Result<Vec<_>, _>>()?;
    let per_client: usize = flag(args, "--per-client").unwrap_or("1").parse()?;
    if tokens.is_empty() || forms.is_empty() {
        return Err("--tokens and --bodies need a line each at least".into());
    }
    let plan = Arc::new(Plan {
        authority,
        forms,
        per_client,
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
        let (status, answer) = upload(&mut connection, &plan.authority, &authorization, form)
            .await
            .map_err(|e| format!("client {index}: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        if status != StatusCode::ACCEPTED {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
            return Err(format!("client {index}: upload answered {status}: {text}").into());
        }
        let document: serde_json::Value = serde_json::from_slice(&answer)?;
        let id = document["id"]
            .as_str()
            .ok_or("an upload's answer has no id")?;
        let line = serde_json::json!({"client": index, "id": id, "seconds": seconds});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// Sends one upload on the client's connection, opening one when there is none. A kept-alive
/// connection the server closed fails (refused, reset or cut short, depending on when the
/// close arrives); the upload is then sent again once on a new one, as the Python clients do.
async fn upload(
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    authorization: &str,
    form: &Form,
) -> Result<(StatusCode, Bytes), BoxError> {
    for attempt in 1..=2 {
        let reused = connection.is_some();
        let sender = match connection {
            Some(sender) => sender,
            None => connection.insert(connect(authority).await?),
        };
        let request = Request::post("/v1/images")
            .header(HOST, authority)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, &form.content_type)
            .body(Full::new(form.bytes.clone()))?;
        let sent = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match sent.await {
            Ok(answer) => return Ok(answer),
            Err(_) if attempt == 1 && reused => *connection = None,
            Err(error) => return Err(error.into()),
        }
    }
    Err("the server closed two connections in a row".into())
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's I/O runs beside the client; it ends when the sender is dropped.
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
        .ok_or("a --bodies line is `<content type>\\t<file>`")?;
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    Ok(Form {
        content_type: content_type.to_owned(),
        bytes: Bytes::from(bytes),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const ANSWER: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 10\r\n\r\n{\"id\":\"x\"}";

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
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
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

    #[tokio::test]
    async fn an_upload_arrives_whole_and_is_sent_again_after_the_server_closed_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        // Each connection answers one upload and is then closed, so the second upload finds
        // its kept-alive connection gone.
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().await.unwrap();
                requests.push(read_request(&mut stream).await);
                stream.write_all(ANSWER).await.unwrap();
            }
            requests
        });
        let form = Form {
            content_type: "multipart/form-data; boundary=b".to_owned(),
            bytes: (0..300_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into(),
        };
        let mut connection = None;
        for _ in 0..2 {
            let (status, answer) = upload(&mut connection, &authority, "Bearer t0", &form)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::ACCEPTED);
            assert_eq!(&answer[..], b"{\"id\":\"x\"}");
        }
        let requests = server.await.unwrap();
        assert_eq!(requests.len(), 2);
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
    }
}
