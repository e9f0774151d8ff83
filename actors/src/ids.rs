//! Small identifier types parsed at the edge, so the engine never handles raw strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An image's id. Version 7 UUIDs sort by creation time, which keeps listings and object keys
/// in upload order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for ImageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// The owner of an image: the `sub` claim of the token that uploaded it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Owner(String);

/// Longest owner id accepted; Keycloak's `sub` is a 36-character UUID.
pub const MAX_OWNER_LEN: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("owner id must be 1 to {MAX_OWNER_LEN} printable characters")]
pub struct InvalidOwner;

impl Owner {
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidOwner> {
        let raw = raw.into();
        let printable = raw.chars().all(|c| !c.is_control());
        if raw.is_empty() || raw.len() > MAX_OWNER_LEN || !printable {
            return Err(InvalidOwner);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Owner {
    type Error = InvalidOwner;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Owner> for String {
    fn from(owner: Owner) -> Self {
        owner.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A variant's name: lower-case letters, digits, `-` and `_`, so it is safe inside an
/// object key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VariantName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("variant names are 1 to 32 characters of a-z, 0-9, '-' and '_'")]
pub struct InvalidVariantName;

impl VariantName {
    /// The primary rendition; `processed` in the status document.
    pub fn main() -> Self {
        Self("main".to_owned())
    }

    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidVariantName> {
        let raw = raw.into();
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > 32 || !raw.chars().all(allowed) {
            return Err(InvalidVariantName);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VariantName {
    type Error = InvalidVariantName;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<VariantName> for String {
    fn from(name: VariantName) -> Self {
        name.0
    }
}

impl fmt::Display for VariantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_rejects_empty_control_and_overlong() {
        assert!(Owner::parse("").is_err());
        assert!(Owner::parse("a\0b").is_err());
        assert!(Owner::parse("x".repeat(MAX_OWNER_LEN + 1)).is_err());
        assert_eq!(Owner::parse("alice").unwrap().as_str(), "alice");
    }

    #[test]
    fn variant_names_are_key_safe() {
        assert!(VariantName::parse("thumb_2x").is_ok());
        for bad in ["", "../x", "A", "a/b", "a.b"] {
            assert!(VariantName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_ids_sort_by_creation() {
        let first = ImageId::new();
        let second = ImageId::new();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<ImageId>().unwrap(), first);
    }
}
