//! Compiling `.proto` files with protox, with the annotations file always importable.
use std::path::{Path, PathBuf};

use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

use crate::SchemaError;

/// The import path under which the annotations are found.
pub const ANNOTATIONS_PROTO_NAME: &str = "discreet/privacy/v1/annotations.proto";
/// The annotations' source, so a store's `.proto` files can import them without copying.
pub const ANNOTATIONS_PROTO: &str =
    include_str!("../../../proto/discreet/privacy/v1/annotations.proto");

/// Serves the embedded annotations file.
struct AnnotationsResolver;

impl FileResolver for AnnotationsResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == ANNOTATIONS_PROTO_NAME {
            File::from_source(name, ANNOTATIONS_PROTO)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// Compiles `files` (searched for in `includes`) into an encoded descriptor set that also
/// holds every import.
pub(crate) fn compile_protos(
    files: &[PathBuf],
    includes: &[PathBuf],
) -> Result<Vec<u8>, SchemaError> {
    let mut resolver = ChainFileResolver::new();
    let mut includes: Vec<PathBuf> = includes.to_vec();
    // A file given without include paths is resolved against its own folder.
    if includes.is_empty() {
        for f in files {
            if let Some(parent) = f.parent() {
                includes.push(if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_owned()
                });
            }
        }
    }
    for include in &includes {
        resolver.add(IncludeFileResolver::new(include.clone()));
    }
    // Files on the include path win, so a team may pin its own copy of the annotations.
    resolver.add(AnnotationsResolver);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    for f in files {
        compiler
            .open_file(f.as_path())
            .map_err(|e| SchemaError::Compile(describe(f, &e)))?;
    }
    // Encoded from protox's pool so custom options survive (prost_types would drop them).
    Ok(compiler.encode_file_descriptor_set())
}

fn describe(file: &Path, e: &protox::Error) -> String {
    format!("{}: {e}", file.display())
}
