//! Where key sets and revocation lists come from: a file or an HTTP(S) URL. Sources only
//! fetch bytes; parsing and staleness live in the service's live documents.

mod file;
mod http;

pub use self::file::{FileSource, changes_content};
pub use self::http::{HttpSource, HttpSourceOptions};

/// Documents larger than this are refused (a JWKS or revocation list is kilobytes).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Why a source could not be read. Messages name the source kind, never credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The file could not be read.
    #[error("source file unreadable: {0}")]
    File(String),
    /// The HTTP request failed or returned a non-success status.
    #[error("source URL unreachable or failed: {0}")]
    Http(String),
    /// The CA bundle of an `https://` source cannot be read or holds no usable
    /// certificate.
    #[error("ca_file {0}")]
    CaFile(String),
    /// The document exceeds the size limit.
    #[error("source document too large")]
    TooLarge,
}

/// A file or URL serving one document.
#[derive(Debug, Clone)]
pub enum DocumentSource {
    /// A local file (for example a mounted ConfigMap); watched for changes.
    File(FileSource),
    /// An HTTP(S) URL; polled.
    Http(Box<HttpSource>),
}

impl DocumentSource {
    /// Reads the whole document.
    pub async fn fetch(&self) -> Result<Vec<u8>, SourceError> {
        match self {
            DocumentSource::File(f) => f.fetch().await,
            DocumentSource::Http(h) => h.fetch().await,
        }
    }
}
