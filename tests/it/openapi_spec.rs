//! The committed spec under `openapi/` is the one the code generates and serves.

use std::path::Path;

#[test]
fn committed_spec_matches_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = pixmill::api::spec_json();
    if std::env::var_os("PIXMILL_UPDATE_SPEC").is_some() {
        std::fs::write(&path, format!("{generated}\n")).expect("write spec");
    }
    let committed = std::fs::read_to_string(&path)
        .expect("openapi/openapi.json exists; regenerate with PIXMILL_UPDATE_SPEC=1");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `PIXMILL_UPDATE_SPEC=1 cargo test --test it openapi_spec` and commit it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_same_spec_and_the_docs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = crate::support::Standalone::start(dir.path()).await;
    let served: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let generated: serde_json::Value =
        serde_json::from_str(&pixmill::api::spec_json()).expect("spec is JSON");
    assert_eq!(served, generated);
    let docs = app.http.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap_or_default().contains("swagger"));
    app.stop().await;
}
