//! `GET /metrics`: every metric of this process in the Prometheus text format. Like the
//! health endpoints it needs no token: it carries counts and timings, never ids or owners.

use std::sync::Arc;

use poem::web::Data;
use poem::{handler, Response};

use crate::gateway::Gateway;
use crate::metrics::CONTENT_TYPE;

#[handler]
pub async fn metrics(gateway: Data<&Arc<Gateway>>) -> Response {
    Response::builder()
        .content_type(CONTENT_TYPE)
        .body(gateway.metrics.render())
}
