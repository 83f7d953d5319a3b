use std::path::PathBuf;

use clap::Args;
use discreet_schema::{Schema, SchemaMapping};

/// Where the schema comes from. Without `--proto`, the reference profile schema that
/// ships with Discreet.
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// A .proto file of the store's API (repeatable). Imports are searched in --include.
    #[arg(long = "proto", value_name = "FILE")]
    pub(crate) protos: Vec<PathBuf>,
    /// An include path for imports (repeatable). The annotations are always importable.
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    pub(crate) includes: Vec<PathBuf>,
    /// Labels for fields the .proto files do not annotate (YAML).
    #[arg(long, value_name = "FILE")]
    pub(crate) mapping: Option<PathBuf>,
}

impl SchemaArgs {
    pub(crate) fn load(&self) -> Result<Schema, String> {
        let mut schema = if self.protos.is_empty() {
            Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET)
        } else {
            Schema::from_protos(&self.protos, &self.includes)
        }
        .map_err(|e| e.to_string())?;
        if let Some(path) = &self.mapping {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mapping = SchemaMapping::parse(path, &text).map_err(|e| e.to_string())?;
            schema
                .apply_mapping(&mapping, path)
                .map_err(|e| e.to_string())?;
        }
        Ok(schema)
    }
}
