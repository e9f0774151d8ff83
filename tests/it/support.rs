//! Helpers that start the real product and talk to it the way a client would.

pub mod keycloak;
pub mod production;
pub mod proxy;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pixmill::app::{App, Mode, StartOptions};
use pixmill::config::Config;
use pixmill_actors::faults::{FaultPlan, NoFaults};
use serde_json::Value;

/// A photo from `tests/fixtures/corpus`.
pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

/// The configuration of a standalone process in `data_dir`, on a free port, tuned so that
/// retries and the relay act within a test's patience.
pub fn standalone_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.server.addr = "127.0.0.1:0".parse().expect("literal address");
    config.engine.relay_interval = Duration::from_millis(100);
    config.engine.retry.base_delay = Duration::from_millis(50);
    config.engine.retry.max_delay = Duration::from_millis(200);
    config.engine.shutdown_grace = Duration::from_secs(5);
    // Tests stop apps often; the drain has a test of its own (shutdown.rs).
    config.server.shutdown_drain = Duration::ZERO;
    config
}

/// Puts the fixture issuer key into `data_dir`, so no test waits for RSA key generation.
pub fn install_fixture_key(data_dir: &Path) {
    let dir = data_dir.join("issuer");
    std::fs::create_dir_all(&dir).expect("create issuer dir");
    let key = dir.join("private-key.pem");
    std::fs::copy(tokens::fixture_key_path(), &key).expect("copy fixture key");
    // The copy keeps the fixture's mode; pixmill refuses a key others may read.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the fixture key");
}

/// A running pixmill (standalone, or any app [`Standalone::serving`] wraps) and a client for
/// it.
pub struct Standalone {
    pub app: Option<App>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Standalone {
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(standalone_config(data_dir), Arc::new(NoFaults)).await
    }

    pub async fn start_with(config: Config, faults: Arc<dyn FaultPlan>) -> Self {
        install_fixture_key(&config.data_dir);
        let app = App::start(config, Mode::Standalone, StartOptions { faults })
            .await
            .expect("standalone starts");
        Self::serving(app)
    }

    /// Wraps an app started elsewhere (a gateway, say) with the same client.
    pub fn serving(app: App) -> Self {
        let base = format!("http://{}", app.addr());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        Self {
            app: Some(app),
            base,
            http,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads a file with optional `steps` JSON; returns the status and the body.
    pub async fn upload(&self, token: &str, file: &Path, steps: Option<&str>) -> (u16, Value) {
        let bytes = std::fs::read(file).expect("read fixture");
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        self.upload_bytes(token, bytes, &name, steps, &[]).await
    }

    pub async fn upload_bytes(
        &self,
        token: &str,
        bytes: Vec<u8>,
        name: &str,
        steps: Option<&str>,
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let mut form = reqwest::multipart::Form::new().part("file", part);
        if let Some(steps) = steps {
            form = form.text("steps", steps.to_owned());
        }
        for (key, value) in fields {
            form = form.text(key.to_string(), value.to_string());
        }
        self.upload_form(token, form).await
    }

    /// `POST /v1/images` with a form the test built: the status and the JSON body (`Null`
    /// when the body is not JSON).
    pub async fn upload_form(&self, token: &str, form: reqwest::multipart::Form) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/v1/images"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET /readyz`, with no token: its status and whole report.
    pub async fn readyz(&self) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE /v1/images/{id}`; the answer's status.
    pub async fn delete_image(&self, token: &str, id: &str) -> u16 {
        self.http
            .delete(self.url(&format!("/v1/images/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    }

    pub async fn download(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("download")
    }

    /// Polls the status document until it is `COMPLETED` or `FAILED`, for at most `patience`.
    pub async fn wait_until_final(&self, token: &str, id: &str, patience: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let (status, doc) = self.get_json(token, &format!("/v1/images/{id}")).await;
            assert_eq!(status, 200, "status document of {id}: {doc}");
            let state = doc["status"].as_str().unwrap_or_default();
            if state == "COMPLETED" || state == "FAILED" {
                return doc;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} still {state} after {patience:?}: {doc}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if self.app.is_some() {
            eprintln!("note: a Standalone app was dropped without stop(); its tasks end with the test runtime");
        }
    }
}

/// The check of backend `name` in a readiness report.
pub fn check_of(report: &Value, name: &str) -> Value {
    report["backends"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}
