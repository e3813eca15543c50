//! `mesos-local`: a master and one agent on loopback in one command, for a
//! first run. The master runs in this process; the agent is the
//! `mesos-agent` binary next to this one, restarted with it.

use std::path::PathBuf;
use std::process::Stdio;

use clap::Parser;
use mesos_master::flags::Flags as MasterFlags;

/// A local cluster: one master and one agent on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "mesos-local", rename_all = "snake_case", version = mesos_common::MESOS_VERSION)]
struct Flags {
    /// Master port.
    #[arg(long, env = "MESOS_LOCAL_MASTER_PORT", default_value_t = 5050)]
    master_port: u16,
    /// Agent port.
    #[arg(long, env = "MESOS_LOCAL_AGENT_PORT", default_value_t = 5051)]
    agent_port: u16,
    /// Directory for the registry, sandboxes and logs.
    #[arg(long, env = "MESOS_LOCAL_WORK_DIR", default_value = "/tmp/mesos-local")]
    work_dir: PathBuf,
    /// Agent resources in Mesos syntax (default: detected).
    #[arg(long, env = "MESOS_LOCAL_RESOURCES")]
    resources: Option<String>,
}

fn main() {
    let flags: Flags = mesos_common::flags::parse_or_exit();
    mesos_common::init_logging("info");
    let agent_binary = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("mesos-agent"),
        Err(e) => mesos_common::flags::fail(format!("cannot locate mesos-agent: {e}")),
    };
    if !agent_binary.exists() {
        mesos_common::flags::fail(format!(
            "{} not found: build it with `cargo build --bins`",
            agent_binary.display()
        ));
    }
    let master_dir = flags.work_dir.join("master");
    let agent_dir = flags.work_dir.join("agent");
    let master_flags = match MasterFlags::try_parse_from([
        "mesos-master".to_string(),
        "--ip=127.0.0.1".to_string(),
        format!("--port={}", flags.master_port),
        format!("--work_dir={}", master_dir.display()),
    ]) {
        Ok(f) => f,
        Err(e) => mesos_common::flags::fail(e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => mesos_common::flags::fail(format!("cannot start the runtime: {e}")),
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let master = tokio::spawn(mesos_master::run::run(master_flags));
        let mut command = tokio::process::Command::new(&agent_binary);
        command
            .arg(format!("--master=127.0.0.1:{}", flags.master_port))
            .arg("--ip=127.0.0.1")
            .arg(format!("--port={}", flags.agent_port))
            .arg(format!("--work_dir={}", agent_dir.display()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(resources) = &flags.resources {
            command.arg(format!("--resources={resources}"));
        }
        let mut agent = command.spawn()?;
        println!(
            "mesos-local: master at http://127.0.0.1:{} (agent at http://127.0.0.1:{}, work dir {})",
            flags.master_port,
            flags.agent_port,
            flags.work_dir.display()
        );
        tokio::select! {
            r = master => { r??; }
            status = agent.wait() => anyhow::bail!("the agent exited: {}", status?),
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = agent.start_kill();
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("mesos-local: {e:#}");
        std::process::exit(1);
    }
}
