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

/// Every discriminated union in the spec sends each `op` (or other tag) to a schema whose
/// tag field allows exactly that value: a generated client builds requests from these
/// schemas, and a shared schema once allowed only one of its ops (`flip` was refused).
#[test]
fn every_discriminator_mapping_names_a_schema_that_allows_its_value() {
    let spec: serde_json::Value =
        serde_json::from_str(&pixmill::api::spec_json()).expect("spec is JSON");
    let schemas = &spec["components"]["schemas"];
    let mut checked = 0;
    for (name, schema) in schemas.as_object().expect("schemas") {
        let Some(discriminator) = schema.get("discriminator") else {
            continue;
        };
        let field = discriminator["propertyName"]
            .as_str()
            .expect("propertyName");
        for (value, target) in discriminator["mapping"].as_object().expect("mapping") {
            let target = target.as_str().expect("a $ref");
            let target_name = target.rsplit('/').next().unwrap_or_default();
            let allowed = &schemas[target_name]["allOf"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&schemas[target_name]))
                .filter_map(|part| part["properties"][field]["enum"].as_array())
                .flatten()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>();
            assert_eq!(
                allowed,
                &[value.as_str()],
                "{name}: {field}={value} maps to {target_name}, which allows {allowed:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} mappings found");
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
