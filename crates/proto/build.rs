//! Compiles the `.proto` files under `proto/` with protox (pure Rust, no system
//! `protoc`) and generates prost types. The file descriptor set is written next
//! to the generated code so the JSON mapping can reflect over the same schema.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "mesos/v1/mesos.proto",
    "mesos/v1/scheduler/scheduler.proto",
    "mesos/v1/executor/executor.proto",
    "mesos/v1/master/master.proto",
    "mesos/v1/agent/agent.proto",
    "messages/messages.proto",
    "registry/registry.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(FILES, ["proto"])?;
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.bytes(["."]);
    config.compile_fds(fds)?;
    Ok(())
}
