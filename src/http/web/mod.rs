//! The web layer around the router, the Prometheus exporter-toolkit way: a web configuration file
//! (`--web.config.file`) with TLS (`tls_server_config`), basic auth with bcrypt hashes
//! (`basic_auth_users`) and response headers (`http_server_config.headers`), plus the request
//! limits every listener has (an oversized URI is a 414).
//!
//! The file and the certificate, key and CA files it names are watched by fingerprint (inode,
//! size, modification time): a change is picked up on the next connection or request, without a
//! restart. A change that does not load keeps the last good settings and logs why.

pub(crate) mod auth;
pub mod config;
pub(crate) mod guard;
pub(crate) mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use config::{WebConfig, WebConfigError};

/// What one load of the web configuration yields.
pub struct Settings {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub auth: Option<auth::BasicAuth>,
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl Settings {
    fn plain() -> Settings {
        Settings {
            tls: None,
            auth: None,
            headers: Vec::new(),
        }
    }

    fn load(path: &Path) -> Result<(Settings, Vec<PathBuf>), WebConfigError> {
        let config = WebConfig::load(path)?;
        let files = config.files(path);
        let tls = match &config.tls {
            Some(tls) => Some(tls::acceptor(tls)?),
            None => None,
        };
        let settings = Settings {
            tls,
            auth: config.basic_auth_users.map(auth::BasicAuth::new),
            headers: config.headers,
        };
        Ok((settings, files))
    }
}

/// The files a load read, as they were: a different fingerprint means a reload is due.
type Fingerprint = Vec<Option<(u64, u64, std::time::SystemTime)>>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.ino(), m.len(), m.modified().ok()?)))
        })
        .collect()
}

struct Loaded {
    settings: Arc<Settings>,
    files: Vec<PathBuf>,
    fingerprint: Fingerprint,
    checked: Instant,
}

/// The web settings in force, reloaded when their files change.
pub struct Web {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

/// Files are looked at no more often than this.
const RECHECK: Duration = Duration::from_millis(500);

impl Web {
    /// No configuration file: plain HTTP, no auth.
    pub fn plain() -> Web {
        Web {
            path: None,
            loaded: Mutex::new(Loaded {
                settings: Arc::new(Settings::plain()),
                files: Vec::new(),
                fingerprint: Vec::new(),
                checked: Instant::now(),
            }),
        }
    }

    /// Loads the configuration file; an error names the key or file at fault.
    pub fn load(path: &Path) -> Result<Web, WebConfigError> {
        let (settings, files) = Settings::load(path)?;
        let fingerprint = fingerprint(&files);
        Ok(Web {
            path: Some(path.to_owned()),
            loaded: Mutex::new(Loaded {
                settings: Arc::new(settings),
                files,
                fingerprint,
                checked: Instant::now(),
            }),
        })
    }

    /// Whether the listener speaks TLS (fixed for the process's life).
    pub fn is_tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// The settings in force, reloaded first when a file changed.
    pub fn current(&self) -> Arc<Settings> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.path else {
            return loaded.settings.clone();
        };
        if loaded.checked.elapsed() < RECHECK {
            return loaded.settings.clone();
        }
        loaded.checked = Instant::now();
        let now = fingerprint(&loaded.files);
        if now == loaded.fingerprint {
            return loaded.settings.clone();
        }
        match Settings::load(path) {
            Ok((settings, _)) if settings.tls.is_some() != loaded.settings.tls.is_some() => {
                tracing::warn!(
                    file = %path.display(),
                    "web configuration changed between TLS and plain HTTP; that needs a restart, keeping the old one"
                );
            }
            Ok((settings, files)) => {
                tracing::info!(file = %path.display(), "web configuration reloaded");
                loaded.settings = Arc::new(settings);
                loaded.fingerprint = fingerprint(&files);
                loaded.files = files;
                return loaded.settings.clone();
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "web configuration cannot be reloaded; keeping the last good one");
            }
        }
        // Not loaded: do not retry until the files change again.
        loaded.fingerprint = now;
        loaded.settings.clone()
    }
}
