//! One configuration model for every process, in layers: typed defaults, then an optional
//! TOML file (`--config` or `PIXMILL_CONFIG`), then `PIXMILL_*` environment variables (`__`
//! nests: `PIXMILL_QUEUE__URL`), then command-line flags. `pixmill.example.toml` at the repo
//! root names every key with its variable and default.

mod keys;
pub mod listen;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use pixmill_actors::pipeline::{Fit, Gravity, Resize};
use pixmill_actors::EngineConfig;
use pixmill_actors::Step;
use serde::{Deserialize, Serialize};

pub use crate::auth::policy::{AudienceClaim, SigningAlgorithm};
pub use crate::auth::roles::RoleRequirement;
pub use crate::gateway::PresetConfig;
pub use secret::{redact_url, Secret};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where standalone mode keeps its database, objects and issuer key.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub worker: WorkerConfig,
    pub metadata: MetadataConfig,
    pub objects: ObjectsConfig,
    pub queue: QueueConfig,
    pub cache: CacheConfig,
    pub auth: AuthConfig,
    pub limits: UploadLimits,
    pub engine: EngineConfig,
    pub log: LogConfig,
    pub webhooks: crate::webhooks::WebhookConfig,
    /// Named pipelines usable as `preset` and `variants` on upload.
    pub presets: BTreeMap<String, PresetConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            worker: WorkerConfig::default(),
            metadata: MetadataConfig::default(),
            objects: ObjectsConfig::default(),
            queue: QueueConfig::default(),
            cache: CacheConfig::default(),
            auth: AuthConfig::default(),
            limits: UploadLimits::default(),
            engine: EngineConfig::default(),
            log: LogConfig::default(),
            webhooks: Default::default(),
            presets: default_presets(),
        }
    }
}

fn resize(width: u32, height: u32, fit: Fit) -> Step {
    Step::Resize(Resize {
        width: Some(width),
        height: Some(height),
        fit,
        gravity: Gravity::Centre,
        background: None,
        upscale: false,
    })
}

/// `thumbnail` (a 200x200 square, cropped) and `medium` (inside 800x800).
fn default_presets() -> BTreeMap<String, PresetConfig> {
    let preset = |step| PresetConfig {
        steps: vec![step],
        output: Default::default(),
    };
    BTreeMap::from([
        ("thumbnail".to_owned(), preset(resize(200, 200, Fit::Cover))),
        ("medium".to_owned(), preset(resize(800, 800, Fit::Inside))),
    ])
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// An address and port, or a host name and port (`localhost:8080`).
    #[serde(with = "listen")]
    pub addr: SocketAddr,
    /// Longest time one request may take, the upload's body included; past it the client
    /// gets `408 request_timeout`. A download's body streams after this.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Uploads handled at once per gateway, from an accepted token to the answer (the body
    /// is read inside the slot); more wait for a slot, and the wait counts against
    /// `request_timeout`.
    pub max_concurrent_uploads: usize,
    /// Uploads one owner may have in progress at once per gateway, so one token cannot hold
    /// every slot; past it `429 too_many_concurrent_uploads`. Below 1 is read as 1.
    pub max_concurrent_uploads_per_owner: usize,
    /// On shutdown, how long the listener stays open after the gateway starts refusing
    /// new uploads (`503 shutting_down`, `Retry-After`), so clients and load balancers
    /// hear a retryable answer instead of a refused connection while they move away.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
    /// How long the gateway waits for in-flight requests once the listener is closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The bound on the whole shutdown (drain, in-flight requests, in-flight jobs): past it
    /// the process exits with status 1 whatever still runs. Nothing accepted is lost by
    /// that: unsettled deliveries return to the queue, and leases and dispatch marks bring
    /// back the rest.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// After a commit, how long the relay waits for the gateway's own publish before it
    /// publishes the job itself.
    #[serde(with = "humantime_serde")]
    pub publish_grace: Duration,
    /// How often a long poll or event stream re-reads the image without being woken by a
    /// status event (events are best effort).
    #[serde(with = "humantime_serde")]
    pub wait_reread: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(60),
            max_concurrent_uploads: 64,
            max_concurrent_uploads_per_owner: 8,
            shutdown_drain: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(30),
            publish_grace: Duration::from_secs(10),
            wait_reread: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Health and metrics listener of a `pixmill worker` process.
    #[serde(with = "listen")]
    pub admin_addr: SocketAddr,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// `sqlite://PATH` (embedded; default: `pixmill.db` in the data dir) or `postgres://...`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetadataConfig {
    pub url: Option<Secret>,
    /// PostgreSQL schema to use (created if missing); for isolating tests and tenants.
    pub schema: Option<String>,
    pub pool_size: usize,
}

/// `file://PATH` (embedded; default: `objects/` in the data dir) or `http(s)://` / `s3://`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectsConfig {
    pub url: Option<String>,
    pub access_key: Secret,
    pub secret_key: Secret,
    pub region: Option<String>,
    /// Prepended to both bucket names; for isolating tests.
    pub bucket_prefix: String,
}

/// `memory://` (embedded, the default) or `amqp://...`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    pub url: Option<Secret>,
    pub name: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            url: None,
            name: "image_processing_queue".to_owned(),
        }
    }
}

/// `memory://` (default) or `redis://...`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    pub url: Option<Secret>,
    /// Prefix of every Redis key; for isolating tests.
    pub key_prefix: String,
    /// Uploads allowed per owner per window.
    pub uploads_per_window: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "pixmill:".to_owned(),
            uploads_per_window: 120,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// The `iss` tokens must carry, e.g. `https://keycloak.example/realms/pixmill`. Unset:
    /// only the standalone issuer is trusted (and only in standalone mode, or with
    /// `trust_local_issuer_unsafe`).
    pub issuer: Option<String>,
    /// Where to fetch keys; default: `jwks_uri` of the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// The name tokens must be addressed to, in the claim `audience_claim` names.
    pub audience: String,
    /// Which claim must name `audience`: `aud`, `azp`, or `aud_or_azp` (`aud` when the token
    /// has one, else `azp`).
    pub audience_claim: AudienceClaim,
    /// Signature algorithms accepted; asymmetric ones only (HMAC is refused at load).
    #[serde(deserialize_with = "crate::auth::policy::non_empty_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Role required to upload: `uploader` or `realm:uploader` (realm role),
    /// `client:<client id>:uploader` (client role); unset or empty means none.
    #[serde(with = "crate::auth::roles::optional")]
    pub upload_role: Option<RoleRequirement>,
    /// Role that may read `/v1/system/*`, in the same forms as `upload_role`.
    pub admin_role: RoleRequirement,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// How long a fetched key set is used before it is refreshed. A stale set keeps serving
    /// while the refresh runs in the background (see `jwks_max_stale`).
    #[serde(with = "humantime_serde")]
    pub jwks_max_age: Duration,
    /// Shortest time between two key-set fetches, whatever causes them (a stale set, a
    /// token naming a `kid` the set lacks, an issuer that did not answer). It bounds what a
    /// flood of forged `kid`s costs the issuer, and it is also how long a key the issuer has
    /// just rotated in may still be refused.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refetch: Duration,
    /// How long past `jwks_max_age` a key set still serves while the issuer cannot be
    /// reached; after that tokens are refused with `503 issuer_unavailable`.
    #[serde(with = "humantime_serde")]
    pub jwks_max_stale: Duration,
    /// Longest a key fetch (discovery document and key set together) may take.
    #[serde(with = "humantime_serde")]
    pub jwks_fetch_timeout: Duration,
    /// Also trust tokens from `pixmill token` (the data dir's key) in gateway mode. For trying
    /// pixmill without Keycloak; never in production.
    pub trust_local_issuer_unsafe: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_url: None,
            audience: "pixmill-api".to_owned(),
            audience_claim: AudienceClaim::default(),
            algorithms: vec![SigningAlgorithm::RS256],
            upload_role: None,
            admin_role: RoleRequirement::realm("pixmill-admin"),
            leeway: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(600),
            jwks_min_refetch: Duration::from_secs(10),
            jwks_max_stale: Duration::from_secs(3600),
            jwks_fetch_timeout: Duration::from_secs(5),
            trust_local_issuer_unsafe: false,
        }
    }
}

/// What an upload may be; checked from the header before anything is stored.
pub type UploadLimits = pixmill_actors::transform::InputLimits;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, readable text when it is.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `PIXMILL_SECTION__KEY` variables; `PIXMILL_CONFIG` names the file instead.
fn env() -> Env {
    Env::prefixed("PIXMILL_").ignore(&["CONFIG"]).split("__")
}

/// Fails on a key of the file, or a variable under a known section, that no setting reads
/// (see `keys`). Variables outside the known sections (`PIXMILL_TEST_S3_URL`, the benches'
/// `PIXMILL_CORPUS`) share the prefix without being settings, so they are left alone.
fn refuse_unknown_keys(file: Option<&Path>) -> Result<(), ConfigError> {
    let fail = |message: String| ConfigError::from(figment::Error::from(message));
    let known = serde_json::to_value(Config::default()).map_err(|e| fail(e.to_string()))?;
    let explain = |key: &str, source: &str| {
        let section = key.rsplit_once('.').map_or("the top level", |(s, _)| s);
        format!(
            "unknown key `{key}` {source}; {section} has: {}",
            keys::section_keys(&known, key).join(", ")
        )
    };
    if let Some(file) = file {
        let given: serde_json::Value = Figment::from(Toml::file_exact(file)).extract()?;
        if let Some(key) = keys::unknown_keys(&known, &given).first() {
            return Err(fail(explain(key, &format!("in {}", file.display()))));
        }
    }
    let mut given: serde_json::Value = Figment::from(env()).extract()?;
    if let (Some(given), Some(known)) = (given.as_object_mut(), known.as_object()) {
        given.retain(|section, _| known.get(section).is_some_and(|v| v.is_object()));
    }
    if let Some(key) = keys::unknown_keys(&known, &given).first() {
        let variable = format!("PIXMILL_{}", key.replace('.', "__").to_uppercase());
        return Err(fail(explain(key, &format!("from {variable}"))));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self(Box::new(error))
    }
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("PIXMILL_CONFIG").map(PathBuf::from));
        if let Some(file) = &file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(env());
        let config: Config = figment.extract()?;
        refuse_unknown_keys(file.as_deref())?;
        config
            .check()
            .map_err(|message| ConfigError::from(figment::Error::from(message)))?;
        Ok(config)
    }

    /// Refuses values each setting's own type allows but the whole cannot run with.
    fn check(&self) -> Result<(), String> {
        self.webhooks.check()?;
        self.engine.check()?;
        // An upload stores its original before it commits its row; the sweeper must not
        // take an original younger than the longest upload for an orphan.
        if self.engine.orphan_age <= self.server.request_timeout {
            let shown = humantime::format_duration;
            return Err(format!(
                "engine.orphan_age ({}) must be longer than server.request_timeout ({}): the \
                 workers' sweeper would take an upload's original for an orphan before the \
                 gateway commits its row; set both alike for gateways and workers",
                shown(self.engine.orphan_age),
                shown(self.server.request_timeout)
            ));
        }
        Ok(())
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("pixmill.db")
    }

    pub fn objects_root(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    pub fn issuer_dir(&self) -> PathBuf {
        self.data_dir.join("issuer")
    }
}

#[cfg(test)]
// figment's Jail returns its own large error type; boxing it in a test buys nothing.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PIXMILL_QUEUE__NAME", "q2");
            jail.set_env("PIXMILL_SERVER__ADDR", "0.0.0.0:9999");
            jail.set_env("PIXMILL_ENGINE__LEASE", "5s");
            jail.set_env("PIXMILL_AUTH__JWKS_MIN_REFETCH", "250ms");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.queue.name, "q2");
            assert_eq!(config.auth.jwks_min_refetch, Duration::from_millis(250));
            assert_eq!(config.server.addr.port(), 9999);
            assert_eq!(config.engine.lease, Duration::from_secs(5));
            Ok(())
        });
    }

    /// The error of loading a file with `text`.
    fn file_error(jail: &mut figment::Jail, text: &str) -> String {
        jail.create_file("pixmill.toml", text)
            .expect("file written");
        match Config::load(Some(Path::new("pixmill.toml"))) {
            Ok(_) => panic!("{text:?} loaded"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_guessable_webhook_secret_is_refused() {
        figment::Jail::expect_with(|jail| {
            let error = file_error(jail, "[webhooks]\nsecret = \"hunter2\"\n");
            assert!(
                error.contains("webhooks.secret is 7 bytes") && error.contains("at least 16"),
                "{error}"
            );
            assert!(
                !error.contains("hunter2"),
                "the secret itself is not repeated"
            );
            jail.set_env("PIXMILL_WEBHOOKS__SECRET", "0123456789abcdef");
            assert!(Config::load(None).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_listen_address_may_name_a_host() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PIXMILL_SERVER__ADDR", "localhost:18432");
            let config = Config::load(None).expect("loads");
            assert!(
                config.server.addr.ip().is_loopback(),
                "{}",
                config.server.addr
            );
            assert_eq!(config.server.addr.port(), 18432);
            jail.set_env("PIXMILL_SERVER__ADDR", "localhost");
            let error = Config::load(None).expect_err("no port").to_string();
            assert!(error.contains("e.g. 127.0.0.1:8080"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn engine_timings_the_engine_cannot_run_with_are_refused_by_name() {
        figment::Jail::expect_with(|jail| {
            for (text, says) in [
                // Past a year, dates computed from it overflow (a sweep's cut-off).
                (
                    "[engine]\norphan_age = \"1000000years\"\n",
                    "engine.orphan_age is",
                ),
                (
                    "[engine.retry]\nmax_delay = \"2years\"\n",
                    "at most 365 days",
                ),
                // Zero would spin the relay; a lease renewed every 3 ms, on a store.
                (
                    "[engine]\nrelay_interval = \"0s\"\n",
                    "engine.relay_interval is 0s; at least 10ms",
                ),
                (
                    "[engine]\nlease = \"10ms\"\n",
                    "engine.lease is 10ms; at least 1s",
                ),
                (
                    "[engine.retry]\nmax_attempts = 0\n",
                    "engine.retry.max_attempts is 0",
                ),
                (
                    "[engine]\norphan_age = \"30s\"\n",
                    "engine.orphan_age (30s) must be longer than server.request_timeout (1m)",
                ),
            ] {
                let error = file_error(jail, text);
                assert!(error.contains(says), "{text:?}: {error}");
            }
            jail.create_file(
                "pixmill.toml",
                "[engine]\norphan_age = \"2m\"\nlease = \"1s\"\n",
            )
            .expect("file written");
            assert!(Config::load(Some(Path::new("pixmill.toml"))).is_ok());
            Ok(())
        });
    }

    #[test]
    fn a_key_of_the_file_no_setting_reads_is_refused_with_its_section() {
        figment::Jail::expect_with(|jail| {
            let error = file_error(jail, "[server]\nadr = \"0.0.0.0:80\"\n");
            assert!(error.contains("`server.adr` in pixmill.toml"), "{error}");
            assert!(error.contains("server has: addr"), "{error}");
            // Input limits are set once, in [limits]; the engine's copy is not a key.
            let error = file_error(jail, "[engine.limits]\nmax_pixels = 5\n");
            assert!(error.contains("`engine.limits`"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_preset_of_the_users_own_loads() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "pixmill.toml",
                "[presets.avatar]\nsteps = [{ op = \"grayscale\" }]\n",
            )?;
            let config =
                Config::load(Some(Path::new("pixmill.toml"))).map_err(|e| e.to_string())?;
            assert!(config.presets.contains_key("avatar"));
            jail.set_env("PIXMILL_PRESETS__BANNER__STEPS", "[{op=\"grayscale\"}]");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert!(config.presets.contains_key("banner"));
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_variable_under_a_section_is_refused_and_others_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PIXMILL_TEST_S3_URL", "http://127.0.0.1:9");
            jail.set_env("PIXMILL_CORPUS", "/tmp/corpus");
            Config::load(None).map_err(|e| e.to_string())?;

            jail.set_env("PIXMILL_ENGINE__LEASES", "5s");
            let error = Config::load(None)
                .expect_err("engine.leases is not a setting")
                .to_string();
            assert!(error.contains("from PIXMILL_ENGINE__LEASES"), "{error}");
            assert!(error.contains("lease"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn hmac_and_empty_algorithm_lists_are_refused_at_load() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PIXMILL_AUTH__ALGORITHMS", "[\"RS256\", \"HS256\"]");
            let error = Config::load(None)
                .expect_err("HS256 is refused")
                .to_string();
            assert!(
                error.contains("HS256") && error.contains("shared-secret"),
                "{error}"
            );
            jail.set_env("PIXMILL_AUTH__ALGORITHMS", "[]");
            let error = Config::load(None)
                .expect_err("an empty list is refused")
                .to_string();
            assert!(error.contains("empty"), "{error}");
            jail.set_env("PIXMILL_AUTH__ALGORITHMS", "[\"PS256\", \"ES256\"]");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let names: Vec<String> = config
                .auth
                .algorithms
                .into_iter()
                .map(String::from)
                .collect();
            assert_eq!(names, ["PS256", "ES256"]);
            Ok(())
        });
    }

    #[test]
    fn upload_roles_parse_in_every_form() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PIXMILL_AUTH__UPLOAD_ROLE", "client:pixmill-api:uploader");
            jail.set_env("PIXMILL_AUTH__AUDIENCE_CLAIM", "azp");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.auth.upload_role,
                Some(RoleRequirement::parse("client:pixmill-api:uploader")?)
            );
            assert_eq!(config.auth.audience_claim, AudienceClaim::Azp);
            // An empty variable switches the requirement off.
            jail.set_env("PIXMILL_AUTH__UPLOAD_ROLE", "");
            assert_eq!(
                Config::load(None)
                    .map_err(|e| e.to_string())?
                    .auth
                    .upload_role,
                None
            );
            jail.set_env("PIXMILL_AUTH__UPLOAD_ROLE", "client:pixmill-api");
            assert!(
                Config::load(None).is_err(),
                "a client role without a client id"
            );
            Ok(())
        });
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        // In a jail: loading reads PIXMILL_* variables, which the jailed tests beside this
        // one set for a while; the jail's lock keeps them from running at the same time.
        figment::Jail::expect_with(|_jail| {
            let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("pixmill.example.toml");
            let loaded = Config::load(Some(&example)).map_err(|e| e.to_string())?;
            let as_json = |c: &Config| serde_json::to_value(c).expect("serialises");
            assert_eq!(as_json(&loaded), as_json(&Config::default()));
            Ok(())
        });
    }

    /// Every key of the configuration, as `section.key`, named in the example file (set, or
    /// commented out when it has no default), so an operator finds each knob there.
    #[test]
    fn the_example_file_names_every_key() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("pixmill.example.toml");
        let text = std::fs::read_to_string(example).expect("the example file");
        let named = example_keys(&text);
        let defaults = serde_json::to_value(Config::default()).expect("serialises");
        let mut keys = Vec::new();
        leaf_keys("", &defaults, &mut keys);
        let missing: Vec<_> = keys.iter().filter(|k| !named.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "not in pixmill.example.toml: {missing:?}"
        );
    }

    /// `section.key` of every leaf; presets are examples, not keys.
    fn leaf_keys(path: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) if path != "presets" => {
                for (name, value) in map {
                    let child = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    leaf_keys(&child, value, keys);
                }
            }
            serde_json::Value::Object(_) => {}
            _ => keys.push(path.to_owned()),
        }
    }

    /// `section.key` of each `key = ...` line, commented out or not.
    fn example_keys(text: &str) -> std::collections::BTreeSet<String> {
        let mut section = String::new();
        let mut keys = std::collections::BTreeSet::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let line = line.trim_start_matches('#').trim_start();
            let Some((key, _)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if key.is_empty() || key.contains(' ') {
                continue;
            }
            keys.insert(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
        keys
    }

    #[test]
    fn defaults_name_the_fixed_queue() {
        assert_eq!(Config::default().queue.name, "image_processing_queue");
    }
}
