//! Buckets are never public: pixmill serves every object through the gateway, after the
//! ownership check, so a bucket policy that lets anyone read would bypass that check for
//! whoever guesses or learns a key.
//!
//! At start the store reads each bucket's policy and refuses to start when one allows an
//! anonymous principal (`"Principal": "*"`, `{"AWS": "*"}`, or `NotPrincipal` with
//! `Allow`), whatever its actions and conditions: pixmill needs no such grant, so it is a
//! mistake to fix, not a risk to weigh. A store without bucket policies (`NotImplemented`)
//! is let through with a warning.
//!
//! Known limit: ACLs are not read (MinIO has none; on AWS, keep Block Public Access on).

use serde_json::Value;

/// Whether the policy document grants anything to an anonymous principal. An empty
/// document (`{}`, what the client returns for "no policy") grants nothing; one that is not
/// JSON is an error.
pub fn grants_anonymous(policy: &str) -> Result<bool, serde_json::Error> {
    let document: Value = serde_json::from_str(policy)?;
    let statements = match document.get("Statement") {
        Some(Value::Array(statements)) => statements.iter().collect(),
        Some(statement) => vec![statement],
        None => Vec::new(),
    };
    Ok(statements.into_iter().any(allows_anyone))
}

fn allows_anyone(statement: &Value) -> bool {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return false;
    }
    // `NotPrincipal` with `Allow` grants everyone but the named few.
    statement.get("NotPrincipal").is_some() || statement.get("Principal").is_some_and(names_anyone)
}

/// `"*"`, or `"*"` among the values of a `{"AWS": ...}`-style map, alone or in a list.
fn names_anyone(principal: &Value) -> bool {
    match principal {
        Value::String(name) => name == "*",
        Value::Array(names) => names.iter().any(names_anyone),
        Value::Object(kinds) => kinds.values().any(names_anyone),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_grants_are_found_in_every_spelling() {
        let public = [
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:*"}}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:root","*"]}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::1:root"}}]}"#,
        ];
        for policy in public {
            assert!(grants_anonymous(policy).expect("parses"), "{policy}");
        }
    }

    #[test]
    fn no_policy_named_principals_and_denials_are_private() {
        let private = [
            "{}",
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"}}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*"}]}"#,
        ];
        for policy in private {
            assert!(!grants_anonymous(policy).expect("parses"), "{policy}");
        }
        assert!(grants_anonymous("not json").is_err());
    }
}
