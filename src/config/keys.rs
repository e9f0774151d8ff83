//! Refuses configuration keys pixmill does not know. serde ignores unknown fields, so a
//! misspelt key (`server.adr`, `PIXMILL_ENGINE__LEASES`) would silently leave the default in
//! force; the operator gets an error naming the key and the keys its section does have.
//!
//! The known keys are the leaves of `Config::default()` serialised. The names in a map of
//! the user's ([`NAMED_BY_USER`], e.g. `presets.avatar`) are the user's to choose; each entry
//! is checked against the shape of a default entry. Where the defaults hold an empty map or
//! nothing (optional settings), any key below is accepted: deserialisation checks the shape.

use serde_json::Value;

/// Maps whose keys are names the user chooses (`[presets.avatar]`), not settings.
pub const NAMED_BY_USER: [&str; 1] = ["presets"];

/// The dotted paths of the keys `given` sets that `known` (the defaults) has no place for.
pub fn unknown_keys(known: &Value, given: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    walk("", known, given, &mut unknown);
    unknown
}

fn walk(path: &str, known: &Value, given: &Value, unknown: &mut Vec<String>) {
    let (Value::Object(known), Value::Object(given)) = (known, given) else {
        return;
    };
    if known.is_empty() {
        return; // an open map with no entry to compare with: its keys are the user's
    }
    if NAMED_BY_USER.contains(&path) {
        // Any name; each entry shaped like the default entries (all share one type).
        if let Some(template) = known.values().next() {
            for (name, value) in given {
                walk(&join(path, name), template, value, unknown);
            }
        }
        return;
    }
    for (name, value) in given {
        let child = join(path, name);
        match known.get(name) {
            Some(Value::Null) => {} // an optional setting, unset by default
            Some(default) => walk(&child, default, value, unknown),
            None => unknown.push(child),
        }
    }
}

/// The keys of the section `path` names, for the error message.
pub fn section_keys(known: &Value, path: &str) -> Vec<String> {
    let section = path
        .rsplit_once('.')
        .map(|(parent, _)| parent)
        .unwrap_or("");
    let mut node = known;
    for part in section.split('.').filter(|p| !p.is_empty()) {
        match node.get(part) {
            Some(next) => node = next,
            None => return Vec::new(),
        }
    }
    // serde_json's map is ordered by key, so the list comes out sorted.
    node.as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn known() -> Value {
        json!({
            "data_dir": "./data",
            "server": {"addr": "127.0.0.1:8080", "body_timeout": "30s"},
            "auth": {"issuer_url": null},
            "presets": {"thumbnail": {"steps": [], "format": null}},
            "headers": {},
        })
    }

    #[test]
    fn a_misspelt_key_is_named_with_its_path() {
        let given = json!({"server": {"adr": "0.0.0.0:80", "addr": "0.0.0.0:81"}, "datadir": "x"});

        let unknown = unknown_keys(&known(), &given);

        assert_eq!(unknown, vec!["datadir", "server.adr"]);
        assert_eq!(
            section_keys(&known(), "server.adr"),
            vec!["addr", "body_timeout"]
        );
    }

    #[test]
    fn user_named_entries_take_any_name_and_the_entry_shape() {
        let given = json!({
            "presets": {"avatar": {"steps": "resize:64"}, "banner": {"stesp": []}},
            "headers": {"X-Anything": "1"},
            "auth": {"issuer_url": {"anything": 1}},
            "server": {"addr": "x"},
        });

        assert_eq!(unknown_keys(&known(), &given), vec!["presets.banner.stesp"]);
    }
}
