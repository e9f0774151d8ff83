//! The operations and output options users ask for, and real-world problem files, through
//! the HTTP API in standalone mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::tokens::token_for;
use crate::support::{corpus, Standalone};

const PATIENCE: Duration = Duration::from_secs(60);

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cases")
        .join(name)
}

/// Objects in a bucket folder of the data dir, not counting the store's staging folder.
fn stored(data: &Path, bucket: &str) -> usize {
    std::fs::read_dir(data.join("objects").join(bucket))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('~'))
                .count()
        })
        .unwrap_or(0)
}

async fn upload_fields(
    app: &Standalone,
    token: &str,
    file: &Path,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let bytes = std::fs::read(file).expect("fixture");
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("f")
        .to_owned();
    app.upload_bytes(token, bytes, &name, None, fields).await
}

async fn completed(app: &Standalone, token: &str, doc: &Value) -> Value {
    let done = app
        .wait_until_final(token, doc["id"].as_str().unwrap_or_default(), PATIENCE)
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_format_quality_and_variants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("variants");
    let (status, doc) = upload_fields(
        &app,
        &token,
        &corpus("astronaut.png"),
        &[
            ("steps", r#"[{"op":"resize","width":300}]"#),
            ("format", "webp"),
            ("quality", "70"),
            ("variants", "thumbnail, medium"),
        ],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    let done = completed(&app, &token, &doc).await;
    assert_eq!(done["processed"]["format"], "webp");
    assert_eq!(done["processed"]["width"], 300);
    let names: Vec<&str> = done["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, vec!["main", "thumbnail", "medium"]);
    let thumbnail = &done["variants"][1];
    assert_eq!(
        (thumbnail["width"].as_u64(), thumbnail["height"].as_u64()),
        (Some(200), Some(200))
    );
    // The 512 px original is not enlarged by `medium` (inside 800x800).
    assert_eq!(done["variants"][2]["width"], 512);

    let response = app
        .download(&token, thumbnail["url"].as_str().unwrap_or_default())
        .await;
    assert_eq!(response.headers()["content-type"], "image/webp");
    let bytes = response.bytes().await.expect("body");
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    assert_eq!(
        image::load_from_memory(&bytes)
            .map(|i| (i.width(), i.height()))
            .ok(),
        Some((200, 200))
    );
    let (status, missing) = app
        .get_json(
            &token,
            &format!(
                "/v1/images/{}/variants/nope",
                done["id"].as_str().unwrap_or_default()
            ),
        )
        .await;
    // The image is COMPLETED: the answer says the name is wrong and which ones there are.
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("unknown_variant"))
    );
    assert!(
        missing["message"]
            .as_str()
            .is_some_and(|m| m.contains("thumbnail, medium")),
        "{missing}"
    );
    // `main` is the primary rendition's name, not a preset to ask for.
    let (status, body) = upload_fields(
        &app,
        &token,
        &corpus("astronaut.png"),
        &[("variants", "main")],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_preset")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_replace_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("presets");
    let (status, doc) = upload_fields(
        &app,
        &token,
        &corpus("rocket.jpg"),
        &[("preset", "thumbnail")],
    )
    .await;
    assert_eq!(status, 202, "{doc}");
    let done = completed(&app, &token, &doc).await;
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(200), Some(200))
    );

    let (status, body) = upload_fields(
        &app,
        &token,
        &corpus("rocket.jpg"),
        &[("preset", "gigantic")],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_preset")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("thumbnail"),
        "names the configured presets: {body}"
    );
    let (status, body) = upload_fields(
        &app,
        &token,
        &corpus("rocket.jpg"),
        &[
            ("preset", "thumbnail"),
            ("steps", r#"[{"op":"grayscale"}]"#),
        ],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_steps")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelled_form_field_is_refused_not_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("typist");
    let bytes = std::fs::read(corpus("rocket.jpg")).expect("fixture");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes))
        .text("step", r#"[{"op":"resize","width":10}]"#);
    let (status, body) = app.upload_form(&token, form).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_field")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`step`") && message.contains("steps"),
        "names the field sent and the fields there are: {message}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_steps_and_bodies_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("steps");
    for steps in [
        "not json",
        r#"{"op":"resize"}"#,
        r#"[{"op":"explode"}]"#,
        r#"[{"op":"resize"}]"#,
        r#"[{"op":"resize","width":0}]"#,
        r#"[{"op":"blur","sigma":-1}]"#,
        r#"[{"op":"resize","width":100,"fit":"cover"}]"#,
        // A misspelled field would otherwise be processed as if it had not been sent.
        r#"[{"op":"resize","width":100,"heigth":50}]"#,
        r#"[{"op":"grayscale","amount":1}]"#,
    ] {
        let (status, body) = app.upload(&token, &corpus("rocket.jpg"), Some(steps)).await;
        assert_eq!(status, 400, "{steps}: {body}");
        // The documented code, whether the form's parser or the steps' own checks refused
        // them, and a message that names the field.
        assert_eq!(body["code"], "invalid_steps", "{steps}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("step")),
            "{steps}: {body}"
        );
    }
    // The most common mistakes are told in the steps' own terms, not the parser's.
    for (steps, told) in [
        (
            r#"[{"op":"explode"}]"#,
            "\"explode\" is not an op; the ops are blur, brightness",
        ),
        (
            r#"[{"op":"sharpen"}]"#,
            "the step `sharpen` needs `sigma` and `amount`",
        ),
    ] {
        let (_, body) = app.upload(&token, &corpus("rocket.jpg"), Some(steps)).await;
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(told)),
            "{steps}: {body}"
        );
    }
    // Other fields out of their schema: the field is named, with its own code where the
    // spec has one.
    for (field, value, code) in [
        ("background", "red", "invalid_background"),
        ("quality", "0", "invalid_request"),
        ("quality", "abc", "invalid_request"),
        ("format", "bmp", "invalid_request"),
    ] {
        let (status, body) =
            upload_fields(&app, &token, &corpus("rocket.jpg"), &[(field, value)]).await;
        assert_eq!(status, 400, "{field}={value}: {body}");
        assert_eq!(body["code"], code, "{field}={value}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("`{field}`"))),
            "{field}={value}: {body}"
        );
    }
    // A body that is not a form at all: the photo sent as is.
    let response = app
        .http
        .post(app.url("/v1/images"))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(std::fs::read(corpus("rocket.jpg")).expect("fixture"))
        .send()
        .await
        .expect("raw upload");
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["code"], "unsupported_content_type", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("image/jpeg") && m.contains("multipart/form-data")),
        "{body}"
    );
    assert_eq!(
        stored(dir.path(), "raw-images"),
        0,
        "a refused upload stored its original"
    );
    // An output format this build cannot write is refused now, not failed later (a build
    // with the `avif` feature takes it).
    let (status, body) =
        upload_fields(&app, &token, &corpus("rocket.jpg"), &[("format", "avif")]).await;
    if pixmill_actors::ImageFormat::Avif.is_writable() {
        assert_eq!(status, 202, "{body}");
    } else {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "output_format_unavailable", "{body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crop_that_starts_outside_the_image_is_refused_at_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("cropper");
    // Outside the photo itself, and outside what an earlier resize left of it (the photo
    // is wider than 150 px; its 100 px thumbnail is not).
    for (steps, size) in [
        (
            r#"[{"op":"crop","x":100000,"y":0,"width":10,"height":10}]"#,
            "image",
        ),
        (
            r#"[{"op":"resize","width":100},{"op":"crop","x":150,"y":0,"width":10,"height":10}]"#,
            "the 100x",
        ),
    ] {
        let (status, body) = app.upload(&token, &corpus("rocket.jpg"), Some(steps)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("crop_outside_image")),
            "{steps}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("lies outside") && message.contains(size),
            "{body}"
        );
    }
    assert_eq!(
        stored(dir.path(), "raw-images"),
        0,
        "a refused upload stored its original"
    );
    // A crop that starts inside and runs past the edge keeps the part inside.
    let (status, body) = app
        .upload(
            &token,
            &corpus("rocket.jpg"),
            Some(r#"[{"op":"resize","width":100},{"op":"crop","x":90,"y":0,"width":50,"height":10}]"#),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let done = completed(&app, &token, &body).await;
    assert_eq!(
        (&done["processed"]["width"], &done["processed"]["height"]),
        (&serde_json::json!(10), &serde_json::json!(10)),
        "{done}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_that_would_make_a_result_larger_than_an_input_may_be_are_refused_at_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("enlarger");
    // A 70-byte PNG enlarged to 16384x16384 (268 megapixels, over the 100 allowed an input),
    // then turned 45 degrees (537 megapixels): gigabytes of canvas from one pixel.
    for steps in [
        r#"[{"op":"resize","width":16384,"height":16384,"upscale":true}]"#,
        r#"[{"op":"resize","width":9000,"height":9000,"upscale":true},{"op":"rotate","angle":45}]"#,
    ] {
        let (status, body) = app.upload(&token, &case("one_px.png"), Some(steps)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("result_too_large")),
            "{steps}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("100000000 pixels"),
            "the refusal says the limit: {body}"
        );
    }
    // Enlarging within the limits is still fine.
    let (status, body) = app
        .upload(
            &token,
            &case("one_px.png"),
            Some(r#"[{"op":"resize","width":2000,"height":2000,"upscale":true}]"#),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let done = completed(&app, &token, &body).await;
    assert_eq!(done["processed"]["width"], 2000, "{done}");
    app.stop().await;
}

/// What a newcomer's trial tied a worker up with for ten minutes: a tiny photo enlarged to
/// 100 megapixels and blurred at sigma 100 thirty-one times. Refused at upload, before
/// anything is stored. (One such blur is within the budget: `transform::work`'s tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_that_would_take_minutes_to_render_are_refused_at_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("greedy");
    let enlarge = r#"{"op":"resize","width":16000,"height":6250,"fit":"fill","upscale":true}"#;
    let blur = r#"{"op":"blur","sigma":100}"#;
    let pile = format!("[{enlarge},{}]", vec![blur; 31].join(","));
    let (status, body) = app.upload(&token, &corpus("rocket.jpg"), Some(&pile)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("steps_too_costly")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("smaller sigma"),
        "the refusal says what to change: {body}"
    );
    let (_, listed) = app.get_json(&token, "/v1/images").await;
    assert_eq!(listed["items"], serde_json::json!([]), "nothing was stored");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_files_get_the_documented_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Standalone::start(dir.path()).await;
    let token = token_for("cases");
    let refused = [
        ("empty.jpg", 400, "empty_upload"),
        ("xss.svg", 415, "unsupported_media_type"),
        ("html_as.png", 415, "unsupported_media_type"),
        ("iphone_like.heic", 415, "unsupported_media_type"),
        ("bomb_header.png", 422, "image_dimensions_exceed_limit"),
    ];
    for (file, status, code) in refused {
        let (got, body) = app.upload(&token, &case(file), None).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{file}: {body}"
        );
    }
    let (_, heic) = app.upload(&token, &case("iphone_like.heic"), None).await;
    assert!(
        heic["message"]
            .as_str()
            .unwrap_or_default()
            .contains("HEIC"),
        "the refusal names the format: {heic}"
    );
    assert_eq!(
        stored(dir.path(), "raw-images"),
        0,
        "a refused upload stored its original"
    );

    // A PNG named .jpg and sent as image/jpeg is recognised by its bytes.
    let bytes = std::fs::read(case("png_named.jpg")).expect("fixture");
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("photo.jpg")
        .mime_str("image/jpeg")
        .expect("mime");
    let form = reqwest::multipart::Form::new().part("file", part);
    let (status, doc) = app.upload_form(&token, form).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["original"]["format"], "png");
    let done = completed(&app, &token, &doc).await;
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(50), Some(30))
    );

    // EXIF orientation is applied before the steps: stored 120x80, upright 80x120.
    let (_, doc) = app
        .upload(
            &token,
            &case("exif_orient6.jpg"),
            Some(r#"[{"op":"resize","width":40,"height":60}]"#),
        )
        .await;
    let done = completed(&app, &token, &doc).await;
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(40), Some(60))
    );

    // A 10000x1 strip thumbnailed stays at least one pixel high.
    let (_, doc) = app
        .upload(
            &token,
            &case("thin_10000x1.png"),
            Some(r#"[{"op":"resize","width":100,"height":100}]"#),
        )
        .await;
    let done = completed(&app, &token, &doc).await;
    assert_eq!(
        (
            done["processed"]["width"].as_u64(),
            done["processed"]["height"].as_u64()
        ),
        (Some(100), Some(1))
    );

    // An animated GIF without `animated`: the first frame, and the status says so.
    let (_, doc) = app
        .upload(
            &token,
            &case("anim_delta.gif"),
            Some(r#"[{"op":"resize","width":32}]"#),
        )
        .await;
    let done = completed(&app, &token, &doc).await;
    assert_eq!(done["variants"][0]["first_frame_only"], true, "{done}");
    // With `animated`, every frame.
    let (_, doc) = upload_fields(
        &app,
        &token,
        &case("anim_delta.gif"),
        &[
            ("steps", r#"[{"op":"resize","width":32}]"#),
            ("animated", "true"),
        ],
    )
    .await;
    assert_eq!(
        doc["original"]["frames"], 4,
        "the upload's answer counts them: {doc}"
    );
    let done = completed(&app, &token, &doc).await;
    assert_eq!(done["processed"]["frames"], 4, "{done}");
    assert_eq!(done["original"]["frames"], 4, "{done}");
    assert_eq!(done["variants"][0]["first_frame_only"], false);

    let (status, _) = app.get_json(&token, "/healthz").await;
    assert_eq!(status, 200, "still healthy after the problem files");
    app.stop().await;
}
