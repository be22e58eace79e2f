//! Generates the Rust code of the Provider contract from `proto/` with protox (no `protoc`
//! needed) and writes the encoded descriptor set used by gRPC reflection.

use std::{env, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.join("vk").display());

    let fds = protox::compile(["vk/provider/v1/provider.proto"], [&proto_root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("provider_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
