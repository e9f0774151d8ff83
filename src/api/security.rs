use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use super::errors::ApiError;
use super::upload_slot::VerifiedCaller;
use crate::auth::Principal;
use crate::gateway::Gateway;

/// A Keycloak (or, in standalone mode, `pixmill token`) access token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify_bearer")]
pub struct BearerAuth(pub Principal);

async fn verify_bearer(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let gateway = request
        .data::<Arc<Gateway>>()
        .ok_or_else(ApiError::internal)?;
    match gateway.verifier.verify(&bearer.token).await {
        Ok(principal) => {
            if let Some(caller) = request.extensions().get::<VerifiedCaller>() {
                caller.set(&principal);
            }
            Ok(principal)
        }
        Err(error) => {
            // The token itself is never logged; the reason is enough to debug a client.
            tracing::info!(code = error.code(), "bearer token refused");
            Err(ApiError::from(error).into())
        }
    }
}
