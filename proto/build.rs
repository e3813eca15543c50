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

const BOXED: &[&str] = &[
    ".mesos.v1.Resource.disk",
    ".mesos.v1.Resource.reservation",
    ".mesos.v1.Resource.provider_id",
    ".mesos.v1.Task.container",
    ".mesos.v1.Task.health_check",
    ".mesos.v1.Task.discovery",
    ".mesos.v1.Task.kill_policy",
    ".mesos.v1.TaskStatus.container_status",
    ".mesos.v1.TaskStatus.check_status",
    ".mesos.v1.TaskStatus.limitation",
    ".mesos.v1.TaskStatus.unreachable_time",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(FILES, ["proto"])?;
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.bytes(["."]);
    // Rarely-set, large optional sub-messages live behind a pointer, so the
    // types the master keeps per task and per resource stay small (a
    // `Resource` is ~1.2 KiB with them inline, ~0.3 KiB boxed).
    for field in BOXED {
        config.boxed(field);
    }
    config.compile_fds(fds)?;
    Ok(())
}
