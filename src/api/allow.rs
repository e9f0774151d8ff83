//! The `Allow` header of a `405`, which RFC 9110 requires: the methods the spec lists for
//! the path that was asked for.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

/// Each path template of the spec (`/v1/images/{id}`) with its methods (`DELETE, GET`).
pub struct AllowedMethods {
    routes: Vec<(Vec<String>, HeaderValue)>,
}

impl AllowedMethods {
    /// Reads the paths and methods of a generated spec.
    pub fn from_spec(spec: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let routes = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(path, operations)| {
                let mut methods: Vec<String> = operations
                    .as_object()?
                    .keys()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                methods.sort();
                let value = HeaderValue::from_str(&methods.join(", ")).ok()?;
                Some((segments(path).map(str::to_owned).collect(), value))
            })
            .collect();
        Self { routes }
    }

    /// The methods of the template `path` matches; a `{parameter}` matches any segment.
    fn for_path(&self, path: &str) -> Option<&HeaderValue> {
        let asked: Vec<&str> = segments(path).collect();
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == asked.len()
                    && template
                        .iter()
                        .zip(&asked)
                        .all(|(t, a)| t.starts_with('{') || t == a)
            })
            .map(|(_, methods)| methods)
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Adds `Allow` to a `405` answer for a path of the spec.
pub async fn add_allow<E: Endpoint>(
    endpoint: &E,
    request: Request,
    allowed: &AllowedMethods,
) -> poem::Result<Response> {
    let methods = allowed.for_path(request.uri().path()).cloned();
    let mut response = endpoint.call(request).await?.into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(methods) = methods {
            response.headers_mut().insert(header::ALLOW, methods);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_any_parameter_value() {
        let spec = r#"{"paths": {
            "/v1/images": {"get": {}, "post": {}},
            "/v1/images/{id}": {"get": {}, "delete": {}}
        }}"#;
        let allowed = AllowedMethods::from_spec(spec);
        assert_eq!(
            allowed.for_path("/v1/images").map(|v| v.as_bytes()),
            Some(&b"GET, POST"[..])
        );
        assert_eq!(
            allowed.for_path("/v1/images/abc/").map(|v| v.as_bytes()),
            Some(&b"DELETE, GET"[..])
        );
        assert!(allowed.for_path("/v1/images/abc/original").is_none());
    }
}
