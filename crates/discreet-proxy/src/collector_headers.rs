//! The metadata sent with every export request (`audit.headers`): a bearer token or API
//! key for a collector that authenticates its clients, a tenant id for one that routes by
//! it.
//!
//! Values from files are credentials: they are re-read when the files change (a token
//! mounted from a Secret, or a projected service-account token that the kubelet renews
//! every hour), apply from the next export request, are sent marked sensitive (h2 never
//! enters them in its HPACK table) and never appear in a log line or an error message. A
//! file that does not load leaves the last good value in use, as for the TLS files.
use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use discreet_config::{CollectorHeaderConfig, collector_header_value_problem};
use discreet_telemetry::{
    CollectorHeaders,
    metrics::{GatewayMetrics, ResultLabels},
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::watched_files::{FileReload, WatchedFiles};

/// The configured headers: inline values as they are, file values as last loaded.
#[derive(Debug)]
pub(crate) struct CollectorHeadersState {
    inline: HeaderMap,
    /// The headers read from files, with the file of each (in the order of
    /// `current.files()`).
    from_files: Vec<(HeaderName, PathBuf)>,
    current: WatchedFiles<HeaderMap>,
}

impl CollectorHeadersState {
    /// Reads every file; any that does not load is fatal at start. `None` when no header
    /// is configured.
    pub(crate) fn load(
        headers: &BTreeMap<String, CollectorHeaderConfig>,
    ) -> Result<Option<Arc<Self>>, String> {
        if headers.is_empty() {
            return Ok(None);
        }
        let mut inline = HeaderMap::new();
        let mut from_files = Vec::new();
        for (name, header) in headers {
            let at = || field(name);
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{}: not a header name", at()))?;
            match (&header.file, &header.value) {
                (Some(file), _) => from_files.push((header_name, file.clone())),
                (None, Some(value)) => {
                    let value = HeaderValue::from_str(value)
                        .map_err(|_| format!("{}: value is not a header value", at()))?;
                    inline.insert(header_name, value);
                }
                (None, None) => return Err(format!("{}: expected file or value", at())),
            }
        }
        let files = from_files.iter().map(|(_, file)| file.clone()).collect();
        let current = WatchedFiles::load(files, |contents| {
            with_file_values(&inline, &from_files, contents)
        })?;
        Ok(Some(Arc::new(CollectorHeadersState {
            inline,
            from_files,
            current,
        })))
    }

    /// What the exporter sends: the headers loaded last, looked up for each request.
    pub(crate) fn exporter_headers(self: &Arc<Self>) -> CollectorHeaders {
        let state = Arc::clone(self);
        CollectorHeaders(Arc::new(move || state.current.current()))
    }

    /// Reloads the files whenever they change, until the returned task is aborted (no task
    /// when every value is inline).
    pub(crate) fn watch(
        self: Arc<Self>,
        poll: Duration,
        metrics: Arc<GatewayMetrics>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.from_files.is_empty() {
            return None;
        }
        let files = self.current.files().to_vec();
        let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        Some(crate::file_watch::watch_files(&paths, poll, move || {
            self.reload(&metrics);
        }))
    }

    fn reload(&self, metrics: &GatewayMetrics) {
        let count = |result: &'static str| {
            metrics
                .audit_header_reloads
                .get_or_create(&ResultLabels { result })
                .inc();
        };
        let reloaded = self
            .current
            .reload(|contents| with_file_values(&self.inline, &self.from_files, contents));
        match reloaded {
            FileReload::Unchanged => {}
            FileReload::Loaded(_) => {
                count("applied");
                tracing::info!(
                    "audit.headers files reloaded; the next export request carries them"
                );
            }
            FileReload::Rejected(message) => {
                count("rejected");
                tracing::error!(
                    "audit.headers files rejected, keeping the values in use: {message}"
                );
            }
        }
    }
}

/// `inline` with each file's value (`contents`, in `from_files` order) added, marked
/// sensitive. Errors name the header and the file, never the value.
fn with_file_values(
    inline: &HeaderMap,
    from_files: &[(HeaderName, PathBuf)],
    contents: &[Vec<u8>],
) -> Result<HeaderMap, String> {
    let mut headers = inline.clone();
    for ((name, file), raw) in from_files.iter().zip(contents) {
        // Secrets are usually written with a trailing newline.
        let value = raw.trim_ascii();
        let refuse = |problem: String| {
            format!(
                "{}: {}: the value {problem}",
                field(name.as_str()),
                file.display()
            )
        };
        if let Some(problem) = collector_header_value_problem(value) {
            return Err(refuse(problem));
        }
        let mut value =
            HeaderValue::from_bytes(value).map_err(|_| refuse("is not a header value".into()))?;
        value.set_sensitive(true);
        headers.insert(name.clone(), value);
    }
    Ok(headers)
}

/// How configuration errors name the header's field: `audit.headers.authorization`,
/// `audit.headers["x-scope-orgid"]`.
fn field(name: &str) -> String {
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        format!("audit.headers.{name}")
    } else {
        format!("audit.headers[{name:?}]")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// A directory of its own for one test, removed after it.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "discreet-collector-headers-{test}-{}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            ScratchDir(dir)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(
        entries: &[(&str, Option<&std::path::Path>, Option<&str>)],
    ) -> BTreeMap<String, CollectorHeaderConfig> {
        entries
            .iter()
            .map(|(name, file, value)| {
                (
                    (*name).to_owned(),
                    CollectorHeaderConfig {
                        file: file.map(std::path::Path::to_path_buf),
                        value: value.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn file_values_are_trimmed_marked_sensitive_and_follow_the_file() {
        let dir = ScratchDir::new("follow");
        let token = dir.0.join("token");
        std::fs::write(&token, "Bearer one\n").unwrap();
        let state = CollectorHeadersState::load(&config(&[
            ("authorization", Some(&token), None),
            ("x-scope-orgid", None, Some("tenant-a")),
        ]))
        .unwrap()
        .unwrap();
        let headers = state.exporter_headers();
        let now = (headers.0)();
        assert_eq!(now["authorization"], "Bearer one");
        assert!(now["authorization"].is_sensitive());
        assert_eq!(now["x-scope-orgid"], "tenant-a");

        let metrics = GatewayMetrics::new("k");
        std::fs::write(&token, "Bearer two").unwrap();
        state.reload(&metrics);
        assert_eq!((headers.0)()["authorization"], "Bearer two");
        assert_eq!((headers.0)()["x-scope-orgid"], "tenant-a");

        // Emptied mid-rotation, or holding a line break: the last good value stays.
        for bad in ["", "Bearer three\nBearer four"] {
            std::fs::write(&token, bad).unwrap();
            state.reload(&metrics);
            assert_eq!((headers.0)()["authorization"], "Bearer two");
        }
        let count = |result| {
            metrics
                .audit_header_reloads
                .get_or_create(&ResultLabels { result })
                .get()
        };
        assert_eq!((count("applied"), count("rejected")), (1, 2));
    }

    #[test]
    fn a_bad_file_at_start_is_refused_naming_it_and_never_quoting_it() {
        let dir = ScratchDir::new("bad");
        let token = dir.0.join("token");
        std::fs::write(&token, "Bearer s3cr3t\r\nsmuggled: yes").unwrap();
        let e = CollectorHeadersState::load(&config(&[("authorization", Some(&token), None)]))
            .unwrap_err();
        assert!(e.starts_with("audit.headers.authorization: "), "{e}");
        assert!(e.contains("token"), "{e}");
        assert!(!e.contains("s3cr3t"), "the value is quoted: {e}");

        let missing = dir.0.join("missing");
        let e = CollectorHeadersState::load(&config(&[("authorization", Some(&missing), None)]))
            .unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn nothing_configured_is_nothing_sent() {
        assert!(
            CollectorHeadersState::load(&BTreeMap::new())
                .unwrap()
                .is_none()
        );
        let state = CollectorHeadersState::load(&config(&[("x-scope-orgid", None, Some("t"))]))
            .unwrap()
            .unwrap();
        let metrics = Arc::new(GatewayMetrics::new("k"));
        assert!(state.watch(Duration::from_secs(1), metrics).is_none());
    }
}
