//! `--web.config.file`: TLS and basic auth on the HTTP listener, in the format of
//! prometheus/exporter-toolkit (the file node_exporter and friends already use):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: clients-ca.crt                 # with client auth
//!   min_version: TLS12                              # TLS12 (default) or TLS13
//! http_server_config:
//!   headers: { X-Frame-Options: deny }
//! basic_auth_users:
//!   prometheus: $2y$10$...                          # htpasswd -nBC 10 prometheus
//! ```
//!
//! Like exporter-toolkit the file is looked at for every new connection (TLS) and request
//! (users, headers) — a `stat`; it is read again only when it changed — and on SIGHUP; a broken new file keeps the previous settings
//! and says why once. Relative paths are relative to the file. Successful password checks are
//! cached (bcrypt is slow on purpose), failed ones never are.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// Most remembered successful logins (a few scrapers use a handful of credentials).
const AUTH_CACHE: usize = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    /// Accepted for compatibility; rustls offers only modern suites and curves.
    #[allow(dead_code)]
    cipher_suites: Option<Vec<String>>,
    #[allow(dead_code)]
    curve_preferences: Option<Vec<String>>,
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    headers: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; the listener speaks HTTP/1.1.
    #[allow(dead_code)]
    http2: Option<bool>,
}

/// One version of the settings.
#[derive(Default)]
pub struct Settings {
    /// TLS on the listener, when configured.
    pub tls: Option<TlsAcceptor>,
    /// user → bcrypt hash; empty: no authentication.
    users: BTreeMap<String, String>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Settings {
    /// Whether requests need credentials.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }
}

/// The settings in force, and the file they come from.
pub struct Security {
    path: Option<PathBuf>,
    current: RwLock<(Arc<Settings>, Option<Stamp>)>,
    last_error: Mutex<Option<String>>,
    verified: Mutex<HashSet<u64>>,
    hasher: RandomState,
}

/// What identifies a version of the file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

impl Security {
    /// No web config: plain HTTP, no authentication.
    pub fn none() -> Security {
        Security::with(None, Settings::default(), None)
    }

    /// Whether the settings come from a file (and so may change).
    pub fn is_configured(&self) -> bool {
        self.path.is_some()
    }

    /// Reads `path`; an error here is a start-up error.
    pub fn from_file(path: &Path) -> Result<Security, String> {
        let stamp = stamp(path);
        let settings = load(path)?;
        Ok(Security::with(Some(path.to_owned()), settings, stamp))
    }

    fn with(path: Option<PathBuf>, settings: Settings, stamp: Option<Stamp>) -> Security {
        Security {
            path,
            current: RwLock::new((Arc::new(settings), stamp)),
            last_error: Mutex::new(None),
            verified: Mutex::default(),
            hasher: RandomState::new(),
        }
    }

    /// The settings for a new connection: re-read first when the file changed on disk.
    pub fn current(&self) -> Arc<Settings> {
        if let Some(path) = &self.path {
            let on_disk = stamp(path);
            let known = self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .1;
            if on_disk != known {
                self.reload_from(path, on_disk);
            }
        }
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// Reads the file again whatever its stamp (SIGHUP).
    pub fn reload(&self) {
        if let Some(path) = &self.path {
            self.reload_from(path, stamp(path));
        }
    }

    fn reload_from(&self, path: &Path, stamp: Option<Stamp>) {
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match load(path) {
            Ok(settings) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    (Arc::new(settings), stamp);
                self.verified
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                tracing::info!(file = %path.display(), "web config loaded");
                *last_error = None;
            }
            Err(error) => {
                // Keep serving with the old settings; remember the stamp so a broken file is
                // not parsed again for every connection.
                self.current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .1 = stamp;
                if last_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(file = %path.display(), %error, "web config not reloaded; keeping the previous one");
                    *last_error = Some(error);
                }
            }
        }
    }

    /// Whether `user`/`password` may pass (always true without users).
    pub async fn allows(self: &Arc<Self>, settings: &Settings, user: &str, password: &str) -> bool {
        let Some(hash) = settings.users.get(user).cloned() else {
            return false;
        };
        let key = self.hasher.hash_one((user, password, &hash));
        if self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return true;
        }
        let password = password.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= AUTH_CACHE {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }
}

/// Reads and checks a web config file.
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read it: {error}"))?;
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_yaml::from_str(&text).map_err(|error| error.to_string())?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |file: &Path| base.join(file);
    let tls = file
        .tls_server_config
        .map(|tls| server_config(&tls, &resolve))
        .transpose()?;
    let users = file.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if !hash.starts_with("$2") {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (use htpasswd -nBC 10 {user})"
            ));
        }
        if user.contains(':') {
            return Err(format!("basic_auth_users: user `{user}` contains ':'"));
        }
    }
    let headers = file
        .http_server_config
        .and_then(|http| http.headers)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            Ok((
                HeaderName::try_from(name.as_str()).map_err(|_| format!("header name `{name}`"))?,
                HeaderValue::try_from(value.as_str())
                    .map_err(|_| format!("header `{name}` value"))?,
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok(Settings {
        tls: tls.map(|config| TlsAcceptor::from(Arc::new(config))),
        users,
        headers,
    })
}

fn server_config(
    tls: &TlsFile,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => return Err(format!("min_version `{other}`: use TLS12 or TLS13")),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|error| error.to_string())?;
    let client_roots = || -> Result<Arc<RootCertStore>, String> {
        let file = tls
            .client_ca_file
            .as_deref()
            .ok_or("client_auth_type needs client_ca_file")?;
        let mut roots = RootCertStore::empty();
        for cert in pem_certs(&resolve(file))? {
            roots
                .add(cert)
                .map_err(|error| format!("client_ca_file: {error}"))?;
        }
        Ok(Arc::new(roots))
    };
    let builder = match tls.client_auth_type.as_deref() {
        None | Some("NoClientCert") => builder.with_no_client_auth(),
        Some("RequireAndVerifyClientCert") => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(client_roots()?, provider)
                .build()
                .map_err(|error| error.to_string())?,
        ),
        Some("VerifyClientCertIfGiven") => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(client_roots()?, provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| error.to_string())?,
        ),
        Some(other) => {
            return Err(format!(
                "client_auth_type `{other}`: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    let chain = pem_certs(&resolve(&tls.cert_file))?;
    let key = PrivateKeyDer::from_pem_file(resolve(&tls.key_file))
        .map_err(|error| format!("key_file {}: {error}", tls.key_file.display()))?;
    builder
        .with_single_cert(chain, key)
        .map_err(|error| format!("cert_file/key_file: {error}"))
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_strictly() {
        let dir = std::env::temp_dir().join(format!("webconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |text: &str| {
            let path = dir.join("web.yml");
            std::fs::write(&path, text).unwrap();
            load(&path)
        };
        let hash = bcrypt::hash("secret", 4).unwrap();
        let ok = write(&format!(
            "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ))
        .unwrap();
        assert!(ok.requires_auth() && ok.tls.is_none());
        assert_eq!(ok.headers[0].0, "x-frame-options");
        assert!(write("").unwrap().users.is_empty());
        let unknown = write("basic_auth_user:\n  x: y\n").err().unwrap();
        assert!(unknown.contains("unknown field"), "{unknown}");
        let plain = write("basic_auth_users:\n  x: plaintext\n").err().unwrap();
        assert!(plain.contains("not a bcrypt hash"), "{plain}");
        let missing = write("tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n")
            .err()
            .unwrap();
        assert!(missing.contains("none.crt"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
