use std::path::PathBuf;

/// Why a schema could not be loaded. Each variant names where to look.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot compile the .proto files: {0}")]
    Compile(String),
    #[error("the descriptor set is not valid: {0}")]
    Descriptors(String),
    #[error("{file}:{line}:{column}: {message}")]
    Mapping {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("field {field}: {message}")]
    Label { field: String, message: String },
    #[error("message type {0} is not in the schema")]
    UnknownMessage(String),
}
