//! Reading a Koios topology file (`{"public": [{"name", "addr", "port", "ssl"?}, ...]}`, as
//! koios-artifacts publishes it per network) into Prometheus file_sd target groups.
//!
//! The file is maintained by many hands, so every entry is checked on its own: a bad entry
//! is skipped with a reason (the caller prints one line for it) and never spoils the others.
//! Only what Prometheus needs is taken from an entry, and every value that becomes a label
//! or a target is validated first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

/// Longest operator name kept as the `operator` label.
const MAX_NAME_CHARS: usize = 128;
/// Longest DNS name (RFC 1035).
const MAX_HOST_CHARS: usize = 253;
/// Longest part of a bad value quoted in a skip reason.
const SHOWN_CHARS: usize = 60;

/// One Prometheus file_sd target group: one instance's exporter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// `host:port` of the exporter (one target).
    pub targets: Vec<String>,
    /// `operator`, `network`, `koios_port`, and `__scheme__` when a scheme was asked for.
    pub labels: BTreeMap<String, String>,
}

/// What to make of the entries.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `network` label.
    pub network: String,
    /// The exporter's port on every instance.
    pub port: u16,
    /// `http` or `https`, written as `__scheme__`; `None` leaves it to the scrape job.
    pub scheme: Option<&'static str>,
}

/// The target groups of a topology, in file order, and the entries skipped (with why).
#[derive(Debug, Default)]
pub struct Converted {
    /// One group per valid, distinct instance.
    pub groups: Vec<TargetGroup>,
    /// One line per skipped entry: which entry and why.
    pub skipped: Vec<String>,
}

/// Why a whole file cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON, but without a `public` list.
    #[error("no \"public\" list of instances (expected {{\"public\": [{{\"name\", \"addr\", \"port\"}}, ...]}})")]
    Shape,
}

/// Converts a topology file's text.
pub fn convert(text: &str, options: &Options) -> Result<Converted, TopologyError> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| TopologyError::Json(error.to_string()))?;
    let entries = document
        .get("public")
        .and_then(Value::as_array)
        .ok_or(TopologyError::Shape)?;
    let mut converted = Converted::default();
    for (index, entry) in entries.iter().enumerate() {
        match group(entry, options) {
            Ok(group) if converted.groups.iter().any(|g| g.targets == group.targets) => {
                converted.skipped.push(format!(
                    "public[{index}]: {} is listed already",
                    group.targets[0]
                ));
            }
            Ok(group) => converted.groups.push(group),
            Err(reason) => converted.skipped.push(format!("public[{index}]: {reason}")),
        }
    }
    Ok(converted)
}

fn group(entry: &Value, options: &Options) -> Result<TargetGroup, String> {
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .ok_or("no \"name\" string")?;
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("\"name\" must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("\"name\" {} holds control characters", shown(name)));
    }
    let addr = entry
        .get("addr")
        .and_then(Value::as_str)
        .map(str::trim)
        .ok_or_else(|| format!("{}: no \"addr\" string", shown(name)))?;
    let host = host(addr).ok_or_else(|| {
        format!(
            "{}: \"addr\" {} is not a host name or IP address",
            shown(name),
            shown(addr)
        )
    })?;
    let koios_port = match entry.get("port") {
        Some(Value::Number(number)) => number.as_u64(),
        // A quoted port is still clearly a port.
        Some(Value::String(text)) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
    .filter(|port| (1..=65_535).contains(port))
    .ok_or_else(|| format!("{}: \"port\" is not a port number (1-65535)", shown(name)))?;
    let mut labels = BTreeMap::from([
        ("operator".to_owned(), name.to_owned()),
        ("network".to_owned(), options.network.clone()),
        ("koios_port".to_owned(), koios_port.to_string()),
    ]);
    if let Some(scheme) = options.scheme {
        labels.insert("__scheme__".to_owned(), scheme.to_owned());
    }
    Ok(TargetGroup {
        targets: vec![format!("{host}:{}", options.port)],
        labels,
    })
}

/// The host part of a target: an IP address (IPv6 in brackets) or a DNS name.
fn host(addr: &str) -> Option<String> {
    let bare = addr
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(addr);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let name = addr.strip_suffix('.').unwrap_or(addr);
    let valid = !name.is_empty()
        && name.len() <= MAX_HOST_CHARS
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // An all-numeric name would be a mistyped IPv4 address.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    valid.then(|| name.to_ascii_lowercase())
}

/// A value for a message: quoted, escaped, shortened.
fn shown(text: &str) -> String {
    let mut short: String = text.chars().take(SHOWN_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// The network a Koios topology file is for, from its published name
/// (`topology-mainnet.json`, `topology-preprod.json`, ...).
pub fn network_of_file_name(file_name: &str) -> Option<String> {
    let network = file_name.strip_prefix("topology-")?.strip_suffix(".json")?;
    valid_network(network).then(|| network.to_owned())
}

/// A network label value: lower-case letters, digits, `-` and `_`, at most 32 characters.
pub fn valid_network(network: &str) -> bool {
    !network.is_empty()
        && network.len() <= 32
        && network
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            network: "mainnet".into(),
            port: 9895,
            scheme: None,
        }
    }

    #[test]
    fn every_entry_stands_on_its_own() {
        let text = r#"{"public": [
            {"name": "Cardano 🦄 Pool", "addr": "koios.example.org", "port": 8453, "ssl": true},
            {"name": "v6", "addr": "2001:db8::1", "port": "8053"},
            {"name": "no port", "addr": "192.0.2.1"},
            {"name": "url", "addr": "https://x.example", "port": 8053},
            {"name": "", "addr": "192.0.2.2", "port": 8053},
            {"name": "big", "addr": "192.0.2.3", "port": 70000},
            {"name": "again", "addr": "KOIOS.example.org", "port": 8053},
            {"name": "numeric", "addr": "10.1", "port": 8053},
            "not an object"
        ], "private": []}"#;
        let converted = convert(text, &options()).unwrap();
        let targets: Vec<&str> = converted
            .groups
            .iter()
            .map(|g| g.targets[0].as_str())
            .collect();
        assert_eq!(targets, ["koios.example.org:9895", "[2001:db8::1]:9895"]);
        assert_eq!(
            converted.groups[0].labels,
            BTreeMap::from([
                ("koios_port".to_owned(), "8453".to_owned()),
                ("network".to_owned(), "mainnet".to_owned()),
                ("operator".to_owned(), "Cardano 🦄 Pool".to_owned()),
            ])
        );
        assert_eq!(
            converted.skipped,
            [
                "public[2]: \"no port\": \"port\" is not a port number (1-65535)",
                "public[3]: \"url\": \"addr\" \"https://x.example\" is not a host name or IP address",
                "public[4]: \"name\" must be 1 to 128 characters",
                "public[5]: \"big\": \"port\" is not a port number (1-65535)",
                "public[6]: koios.example.org:9895 is listed already",
                "public[7]: \"numeric\": \"addr\" \"10.1\" is not a host name or IP address",
                "public[8]: no \"name\" string",
            ]
        );
    }

    #[test]
    fn a_scheme_is_a_label_and_the_file_must_have_a_public_list() {
        let text = r#"{"public": [{"name": "a", "addr": "192.0.2.1", "port": 8053}]}"#;
        let https = Options {
            port: 9443,
            scheme: Some("https"),
            ..options()
        };
        let converted = convert(text, &https).unwrap();
        assert_eq!(converted.groups[0].targets, ["192.0.2.1:9443"]);
        assert_eq!(converted.groups[0].labels["__scheme__"], "https");
        assert_eq!(convert("[]", &https).unwrap_err(), TopologyError::Shape);
        assert!(matches!(convert("{", &https), Err(TopologyError::Json(_))));
    }

    #[test]
    fn the_network_comes_from_koios_file_names() {
        assert_eq!(
            network_of_file_name("topology-preprod.json").as_deref(),
            Some("preprod")
        );
        assert_eq!(network_of_file_name("topology.json"), None);
        assert_eq!(network_of_file_name("topology-Main Net.json"), None);
    }
}
