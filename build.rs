//! Compiles the v1 contract with protox (pure Rust: no protoc on any machine) and embeds
//! the migrations of both backends so the binary carries its schema.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let protos = sorted_files(Path::new("proto/credithub/v1"), "proto")?;
    let fds = protox::compile(&protos, ["proto"])?;
    fs::write(out.join("credithub_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .codec_path("crate::api::codec::ProtoCodec")
        .compile_fds(fds)?;

    let mut code = String::new();
    for backend in ["sqlite", "postgres"] {
        code.push_str(&format!(
            "/// Migrations for {backend}: (version, description, SQL).\n\
             pub const {}: &[(i64, &str, &str)] = &[\n",
            backend.to_uppercase()
        ));
        for path in sorted_files(&Path::new("migrations").join(backend), "sql")? {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let (version, description) = stem
                .split_once('_')
                .ok_or("migration file names are VERSION_description.sql")?;
            let version: i64 = version.parse()?;
            let abs = fs::canonicalize(&path)?;
            code.push_str(&format!(
                "    ({version}, {description:?}, include_str!({:?})),\n",
                abs.display().to_string()
            ));
        }
        code.push_str("];\n");
    }
    fs::write(out.join("migrations.rs"), code)?;
    Ok(())
}

fn sorted_files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}
