//! Compiles `proto/` with protox (pure Rust: no system `protoc` at build or run time),
//! generates prost messages and tonic services, and writes the encoded descriptor set
//! that schema loading, reflection and tests read.
use std::{env, error::Error, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        root.join("discreet/privacy/v1/annotations.proto"),
        root.join("profile/v1/profile.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).open_files(&files)?;
    // Encoded from protox's own pool: a round trip through prost_types would drop the
    // custom options (prost keeps no unknown fields), and they are the whole point.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let fds = compiler.file_descriptor_set();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
