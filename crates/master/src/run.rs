//! Wiring: flags → registry → state machine → listeners.

use std::sync::Arc;

use anyhow::Context;
use mesos_common::transport::Transport;
use mesos_common::Upid;
use tokio::net::TcpListener;

use crate::core::{Config, Master};
use crate::flags::{Flags, RegistryKind};
use crate::registry::{InMemoryRegistry, Registry, SledRegistry};

/// Runs a master until the process is stopped.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let listener = TcpListener::bind((flags.ip, flags.port))
        .await
        .with_context(|| format!("binding {}:{}", flags.ip, flags.port))?;
    let port = listener.local_addr()?.port();
    let advertised_port = flags.advertise_port.unwrap_or(port);
    let ip = flags.advertised_ip().to_string();
    let upid = Upid::new("master", ip.clone(), advertised_port);
    let registry: Box<dyn Registry> = match flags.registry {
        RegistryKind::Sled => {
            let dir = flags
                .work_dir
                .clone()
                .context("--work_dir is required with --registry=sled")?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating --work_dir {}", dir.display()))?;
            Box::new(SledRegistry::open(&dir).context("opening the registry")?)
        }
        RegistryKind::InMemory => {
            tracing::warn!("--registry=in_memory: agents admitted now are forgotten on restart");
            Box::new(InMemoryRegistry::default())
        }
    };
    let config = Config {
        upid: upid.clone(),
        hostname: flags.hostname.clone().unwrap_or_else(|| ip.clone()),
        agent_ping_timeout: flags.agent_ping_timeout,
        max_agent_ping_timeouts: flags.max_agent_ping_timeouts,
        agent_reregister_timeout: flags.agent_reregister_timeout,
        role_whitelist: flags.role_whitelist(),
        root_submissions: flags.root_submissions,
        max_completed_frameworks: flags.max_completed_frameworks,
        max_completed_tasks_per_framework: flags.max_completed_tasks_per_framework,
        weights: flags.parsed_weights().map_err(anyhow::Error::msg)?,
    };
    let master = Master::new(config, registry).context("recovering the registry")?;
    tracing::info!(id = %master.info.id, pid = %upid, "master started");
    let handle = crate::actor::spawn(master, Transport::default(), flags.allocation_interval);
    let state = crate::http::AppState {
        master: handle,
        flags: Arc::new(flags),
    };
    let app = crate::http::router(state);
    println!("Master listening on http://{}:{}", ip, advertised_port);
    mesos_common::net::serve(listener, app)
        .await
        .context("serving")?;
    Ok(())
}
