//! Roles an action can require, in the two places Keycloak puts them: realm roles
//! (`realm_access.roles`) and client roles (`resource_access.<client>.roles`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A required role, written in the configuration as `uploader` or `realm:uploader` (a realm
/// role) or `client:pixmill-api:uploader` (a role of the client `pixmill-api`).
///
/// In the client form the client id is everything up to the *last* colon, since client ids
/// may be URLs (`client:https://app.example:uploader`); a role name with a colon can
/// therefore only be a realm role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleRequirement {
    /// `None` for a realm role.
    client: Option<String>,
    role: String,
    /// As configured, so the configuration serialises back to what was written.
    written: String,
}

impl RoleRequirement {
    /// A realm role, from a name known to be well formed (a default, a test).
    pub fn realm(role: &str) -> Self {
        Self {
            client: None,
            role: role.to_owned(),
            written: role.to_owned(),
        }
    }

    pub fn parse(written: &str) -> Result<Self, String> {
        let (client, role) = if let Some(rest) = written.strip_prefix("client:") {
            let (client, role) = rest.rsplit_once(':').ok_or_else(|| {
                format!("`{written}`: a client role is written `client:<client id>:<role>`")
            })?;
            if client.is_empty() {
                return Err(format!("`{written}`: the client id is empty"));
            }
            (Some(client.to_owned()), role)
        } else if let Some(role) = written.strip_prefix("realm:") {
            (None, role)
        } else if written.contains(':') {
            // Most likely a misspelled prefix (`clinet:pixmill-api:uploader`), which would
            // otherwise become a realm role nobody holds and refuse every caller.
            return Err(format!(
                "`{written}`: a role is written `<role>`, `realm:<role>` or \
                 `client:<client id>:<role>`; for a realm role whose name has a colon, write \
                 `realm:{written}`"
            ));
        } else {
            (None, written)
        };
        if role.is_empty() {
            return Err(format!("`{written}`: the role name is empty"));
        }
        Ok(Self {
            client,
            role: role.to_owned(),
            written: written.to_owned(),
        })
    }

    /// Whether a caller with these realm roles and client roles has it.
    pub fn is_met_by(&self, realm: &[String], clients: &ClientRoles) -> bool {
        let held = match &self.client {
            None => realm,
            Some(client) => clients.get(client).map_or(&[][..], Vec::as_slice),
        };
        held.contains(&self.role)
    }
}

/// Client id to that client's roles, as in `resource_access`.
pub type ClientRoles = std::collections::BTreeMap<String, Vec<String>>;

impl TryFrom<String> for RoleRequirement {
    type Error = String;

    fn try_from(written: String) -> Result<Self, String> {
        Self::parse(&written)
    }
}

impl From<RoleRequirement> for String {
    fn from(role: RoleRequirement) -> Self {
        role.written
    }
}

impl fmt::Display for RoleRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.client {
            None => write!(f, "realm role {}", self.role),
            Some(client) => write!(f, "role {} of client {client}", self.role),
        }
    }
}

/// For `auth.upload_role`: unset or empty means no role is required (an empty variable,
/// `PIXMILL_AUTH__UPLOAD_ROLE=`, is how a deployment switches it off).
pub mod optional {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::RoleRequirement;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<RoleRequirement>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(written) if written.is_empty() => Ok(None),
            Some(written) => RoleRequirement::parse(&written)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(
        role: &Option<RoleRequirement>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match role {
            Some(role) => serializer.serialize_some(&role.written),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_three_forms_parse() {
        let clients = ClientRoles::from([("pixmill-api".to_owned(), roles(&["uploader"]))]);
        let plain = RoleRequirement::parse("uploader").expect("plain");
        let realm = RoleRequirement::parse("realm:uploader").expect("realm");
        let client = RoleRequirement::parse("client:pixmill-api:uploader").expect("client");
        assert!(plain.is_met_by(&roles(&["uploader"]), &ClientRoles::new()));
        assert!(realm.is_met_by(&roles(&["uploader"]), &ClientRoles::new()));
        assert!(
            !realm.is_met_by(&[], &clients),
            "a client role is not a realm role"
        );
        assert!(client.is_met_by(&[], &clients));
        assert!(!client.is_met_by(&roles(&["uploader"]), &ClientRoles::new()));
        let elsewhere = ClientRoles::from([("account".to_owned(), roles(&["uploader"]))]);
        assert!(!client.is_met_by(&[], &elsewhere), "another client's role");
    }

    #[test]
    fn a_client_id_may_hold_colons() {
        let role = RoleRequirement::parse("client:https://app.example:up").expect("parses");
        let clients = ClientRoles::from([("https://app.example".to_owned(), roles(&["up"]))]);
        assert!(role.is_met_by(&[], &clients));
    }

    #[test]
    fn incomplete_forms_are_refused() {
        for bad in [
            "realm:",
            "client:",
            "client:api",
            "client::up",
            "client:api:",
            "",
        ] {
            assert!(RoleRequirement::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_misspelled_prefix_is_refused_not_taken_for_a_realm_role() {
        let error = RoleRequirement::parse("clinet:pixmill-api:uploader").unwrap_err();
        assert!(error.contains("client:<client id>:<role>"), "{error}");
        // A realm role with a colon in its name is still possible, spelled out.
        let colon = RoleRequirement::parse("realm:team:uploader").expect("explicit realm role");
        assert!(colon.is_met_by(&roles(&["team:uploader"]), &ClientRoles::new()));
    }
}
