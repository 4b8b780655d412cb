//! libpq's conventions that tokio-postgres does not implement: the TLS parameters (`sslmode`
//! with all six values, `sslrootcert`, `sslcert`, `sslkey`, in the connection string or as
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) and the password file (`PGPASSFILE`
//! or `~/.pgpass`), with libpq's matching rules and its refusal of a file others can read.
//!
//! The TLS parameters are taken out of the connection string before tokio-postgres parses
//! it (it knows only `disable`, `prefer` and `require`, and no certificate files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `sslmode`, as libpq defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// libpq tries plaintext first; here TLS is tried first, as with `prefer` (it only ever
    /// gives more encryption, and the server decides the same way).
    Allow,
    /// TLS when the server offers it, else plaintext (libpq's default). Not verified unless a
    /// root certificate is given.
    Prefer,
    /// TLS or no connection. Not verified unless a root certificate is given (then as
    /// `verify-ca`), as libpq does.
    Require,
    /// TLS, the server's chain verified against the root certificate.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        })
    }
}

/// Where trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file.
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// How the exporter talks TLS to PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The mode.
    pub mode: SslMode,
    /// Roots to verify the server with (`None`: no verification, for prefer/require).
    pub roots: Option<RootCerts>,
    /// Client certificate and key (PEM files), when the server asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            mode: SslMode::Prefer,
            roots: None,
            client_cert: None,
        }
    }
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Takes the TLS parameters out of a connection string (URL or `key=value` form); returns the
/// rest for tokio-postgres and the parameters found.
pub fn split_tls_params(text: &str) -> (String, BTreeMap<String, String>) {
    let mut found = BTreeMap::new();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_owned(), found);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let tls = TLS_KEYS.contains(&key);
                if tls {
                    found.insert(key.to_owned(), percent_decode(value));
                }
                !tls
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, found);
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_values(text) {
        if TLS_KEYS.contains(&key.as_str()) {
            found.insert(key, value);
        } else {
            kept.push(raw);
        }
    }
    (kept.join(" "), found)
}

/// The `key=value` pairs of a libpq keyword string, each with its original text.
fn key_values(text: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            if !key.is_empty() {
                pairs.push((key.clone(), String::new(), key));
            }
            continue;
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        pairs.push((key, value, raw));
    }
    pairs
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) if hex(high).is_some() && hex(low).is_some() => {
                out.push((hex(high).unwrap() * 16 + hex(low).unwrap()) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The TLS configuration from the string's parameters, falling back to `PGSSL*` variables
/// through `var`; `home` is where libpq looks for `~/.postgresql/root.crt` by default.
pub fn tls_config(
    params: &BTreeMap<String, String>,
    var: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<TlsConfig, String> {
    let get = |key: &str, env: &str| {
        params
            .get(key)
            .cloned()
            .or_else(|| var(env))
            .filter(|value| !value.is_empty())
    };
    let mode = match get("sslmode", "PGSSLMODE") {
        Some(mode) => SslMode::parse(&mode)?,
        None => SslMode::Prefer,
    };
    let default_root = home.map(|home| home.join(".postgresql/root.crt"));
    let roots = match get("sslrootcert", "PGSSLROOTCERT") {
        Some(text) if text == "system" => Some(RootCerts::System),
        Some(path) => Some(RootCerts::File(PathBuf::from(path))),
        // libpq uses ~/.postgresql/root.crt when it exists, and needs it to verify.
        None => default_root
            .filter(|path| path.exists())
            .map(RootCerts::File),
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots.is_none() {
        return Err(format!(
            "sslmode {} needs a root certificate: set sslrootcert (a file, or `system`) \
             or create ~/.postgresql/root.crt",
            if mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    if let Some(RootCerts::File(path)) = &roots {
        if !path.is_file() {
            return Err(format!(
                "sslrootcert {} is not a readable file",
                path.display()
            ));
        }
    }
    let client_cert = match (get("sslcert", "PGSSLCERT"), get("sslkey", "PGSSLKEY")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err("sslcert and sslkey go together".into()),
    };
    Ok(TlsConfig {
        mode,
        roots,
        client_cert,
    })
}

/// What a password file entry is matched against.
#[derive(Clone, Debug)]
pub struct PasswordLookup<'a> {
    /// Host name, or `localhost` for a Unix socket (as libpq matches it).
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: &'a str,
    /// User.
    pub user: &'a str,
}

/// The password for `lookup` in the password file, if any. A file readable by group or others
/// is ignored with a warning, as libpq does.
pub fn password_from_file(path: &Path, lookup: &PasswordLookup<'_>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less: ignored"
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find_password(&text, lookup)
}

/// The first matching line's password (libpq: `host:port:database:user:password`, `*` matches
/// anything, `\:` and `\\` escape, `#` starts a comment line).
pub fn find_password(text: &str, lookup: &PasswordLookup<'_>) -> Option<String> {
    let port = lookup.port.to_string();
    let wanted = [lookup.host, port.as_str(), lookup.database, lookup.user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4..].join(":"))
        })
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_both_forms_of_connection_string() {
        let (rest, found) = split_tls_params(
            "postgres://u:p@db.example:5432/cexplorer?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/cexplorer?application_name=x"
        );
        assert_eq!(found["sslmode"], "verify-full");
        assert_eq!(found["sslrootcert"], "/etc/ca.pem");
        let (rest, found) = split_tls_params(
            "host=db.example dbname=cexplorer sslmode = require sslrootcert='/etc/my ca.pem' user=koios",
        );
        assert_eq!(rest, "host=db.example dbname=cexplorer user=koios");
        assert_eq!(found["sslmode"], "require");
        assert_eq!(found["sslrootcert"], "/etc/my ca.pem");
        assert_eq!(split_tls_params("postgres://x@h/db").0, "postgres://x@h/db");
    }

    #[test]
    fn modes_and_roots_follow_libpq() {
        let none = |_: &str| None;
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            tls_config(&params(&[]), none, None).unwrap(),
            TlsConfig::default()
        );
        let error = tls_config(&params(&[("sslmode", "verify-full")]), none, None).unwrap_err();
        assert!(error.contains("needs a root certificate"), "{error}");
        let system = tls_config(
            &params(&[("sslmode", "verify-full"), ("sslrootcert", "system")]),
            none,
            None,
        )
        .unwrap();
        assert_eq!(system.roots, Some(RootCerts::System));
        let env = |name: &str| (name == "PGSSLMODE").then(|| "require".to_owned());
        assert_eq!(
            tls_config(&params(&[]), env, None).unwrap().mode,
            SslMode::Require
        );
        assert!(tls_config(&params(&[("sslmode", "sometimes")]), none, None).is_err());
        assert!(tls_config(&params(&[("sslcert", "/c")]), none, None).is_err());
    }

    #[test]
    fn password_lines_match_like_libpq() {
        let file = "# comment\n\
                    other:5432:*:koios:nope\n\
                    db.example:5432:cexplorer:koios:s3cr\\:et\\\\x\n\
                    *:*:*:*:fallback\n";
        let lookup = |host| PasswordLookup {
            host,
            port: 5432,
            database: "cexplorer",
            user: "koios",
        };
        assert_eq!(
            find_password(file, &lookup("db.example")).as_deref(),
            Some("s3cr:et\\x")
        );
        assert_eq!(
            find_password(file, &lookup("elsewhere")).as_deref(),
            Some("fallback")
        );
        assert_eq!(find_password("h:1:d:u\n", &lookup("h")), None);
    }
}
