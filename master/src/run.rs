//! Wiring: flags → registry → state machine → listeners.

use std::sync::Arc;

use anyhow::Context;
use mesos_common::auth::audit::AuditLog;
use mesos_common::transport::Transport;
use mesos_common::Upid;

use crate::authn::{Authn, Gate, Realms, Settings};
use crate::core::{Config, Master};
use crate::flags::{Flags, RegistryKind};
use crate::registry::{InMemoryRegistry, RedbRegistry, Registry, SledRegistry};

/// Runs a master until the process is stopped.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    // TLS settings and files are checked before any socket is bound.
    let tls = mesos_common::tls::Tls::from_env()?;
    let limits = mesos_common::connections::Limits::at_startup(&flags.connections, false);
    let listener = mesos_common::net::bind_listener(flags.ip, flags.port)
        .with_context(|| format!("binding {}:{}", flags.ip, flags.port))?;
    let port = listener.local_addr()?.port();
    let advertised_port = flags.advertise_port.unwrap_or(port);
    let ip = flags.advertised_ip().to_string();
    let upid = Upid::new("master", ip.clone(), advertised_port);
    let hostname = flags.hostname.clone().unwrap_or_else(|| ip.clone());
    let audit = match &flags.audit_log {
        Some(path) => AuditLog::open(path)
            .with_context(|| format!("opening --audit_log {}", path.display()))?,
        None => AuditLog::disabled(),
    };
    let (authz, casbin) = authz_from_flags(&flags, audit.clone())?;
    if let (Some(casbin), Some(value)) = (casbin, flags.acls.clone()) {
        reload_acls_on_sighup(casbin, value);
    }
    let registry: Box<dyn Registry> = match flags.registry {
        RegistryKind::Redb | RegistryKind::Sled => {
            let dir = flags.work_dir.clone().with_context(|| {
                format!(
                    "--work_dir is required with --registry={}",
                    flags.registry_name()
                )
            })?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating --work_dir {}", dir.display()))?;
            if flags.registry == RegistryKind::Redb {
                Box::new(RedbRegistry::open(&dir).context("opening the registry")?)
            } else {
                tracing::warn!("--registry=sled: its flush does not fsync, so a power loss can lose acknowledged changes; the default --registry=redb does not");
                Box::new(SledRegistry::open(&dir).context("opening the registry")?)
            }
        }
        RegistryKind::InMemory => {
            tracing::warn!("--registry=in_memory: agents admitted now are forgotten on restart");
            Box::new(InMemoryRegistry::default())
        }
    };
    let config = Config {
        upid: upid.clone(),
        hostname: hostname.clone(),
        agent_ping_timeout: flags.agent_ping_timeout,
        max_agent_ping_timeouts: flags.max_agent_ping_timeouts,
        agent_reregister_timeout: flags.agent_reregister_timeout,
        role_whitelist: flags.role_whitelist(),
        root_submissions: flags.root_submissions,
        max_completed_frameworks: flags.max_completed_frameworks,
        max_completed_tasks_per_framework: flags.max_completed_tasks_per_framework,
        weights: flags.parsed_weights().map_err(anyhow::Error::msg)?,
        authenticate_agents: flags.authenticate_agents,
        authz: authz.clone(),
    };
    let authn = authn_from_flags(&flags, &hostname, audit)?;
    let master = Master::new(config, registry).context("recovering the registry")?;
    tracing::info!(id = %master.info.id, pid = %upid, "master started");
    let transport = Transport::new(mesos_common::net::connector(tls.clone()));
    if let Some(tls) = &tls {
        tls.watch(std::time::Duration::from_secs(1));
    }
    let handle = crate::actor::spawn(master, transport.clone(), flags.allocation_interval);
    let gate = Gate {
        authn: authn.clone(),
        master: handle.clone(),
        transport,
        self_upid: upid.clone(),
    };
    reload_on_sighup(authn.clone());
    let state = crate::http::AppState {
        master: handle,
        flags: Arc::new(flags),
        authn,
        gate,
        authz,
    };
    let app = crate::http::router(state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Master listening on {scheme}://{}:{}", ip, advertised_port);
    mesos_common::net::serve_tls(listener, app, tls, limits)
        .await
        .context("serving")?;
    Ok(())
}

/// Builds the authenticators and says, as Mesos does, what is required.
fn authn_from_flags(flags: &Flags, hostname: &str, audit: AuditLog) -> anyhow::Result<Authn> {
    if flags.authenticate_frameworks {
        tracing::info!("Master only allowing authenticated frameworks to register");
    }
    if flags.authenticate_agents {
        tracing::info!("Master only allowing authenticated agents to register");
    }
    if flags.authenticate_http_frameworks {
        tracing::info!("Master only allowing authenticated HTTP frameworks to register");
    }
    for warning in flags.security_warnings() {
        tracing::warn!("SECURITY: {warning}");
    }
    let settings = Settings {
        credentials_path: flags.credentials.clone(),
        mechanisms: flags.sasl_mechanisms().map_err(anyhow::Error::msg)?,
        hostname: hostname.to_string(),
        timeout: flags.authentication_v0_timeout,
        realms: Realms {
            scheduler: flags.authenticate_http_frameworks,
            readonly: flags.authenticate_http_readonly,
            readwrite: flags.authenticate_http_readwrite,
        },
        audit,
    };
    Authn::new(settings).map_err(|e| anyhow::anyhow!("--credentials: {e}"))
}

/// Reloads `--credentials` on SIGHUP; a bad file keeps the old ones.
fn reload_on_sighup(authn: Authn) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: credentials will not reload");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match authn.reload() {
                Ok(count) => tracing::info!(principals = count, "SIGHUP: reloaded --credentials"),
                Err(e) => tracing::warn!("SIGHUP: keeping the current credentials: {e}"),
            }
        }
    });
}

/// The authorizer in force: `--acls`, else our secure default when any
/// authentication is on, else none (Mesos's open default, under
/// `--insecure` only). Decisions are audited to `audit`.
fn authz_from_flags(
    flags: &Flags,
    audit: AuditLog,
) -> anyhow::Result<(
    crate::core::authz::Authz,
    Option<Arc<mesos_acls::CasbinAuthorizer>>,
)> {
    let casbin;
    let authorizer: Option<Arc<dyn mesos_acls::Authorizer>> = match &flags.acls {
        Some(value) => {
            let parsed =
                mesos_acls::Acls::from_flag(value).map_err(|e| anyhow::anyhow!("--acls: {e}"))?;
            for warning in &parsed.warnings {
                tracing::warn!("--acls: {warning}");
            }
            let authorizer = mesos_acls::CasbinAuthorizer::new_blocking(&parsed.acls)
                .map_err(|e| anyhow::anyhow!("--acls: {e}"))?;
            tracing::info!(
                entries = parsed.acls.len(),
                permissive = parsed.acls.permissive,
                "authorizing with --acls"
            );
            let authorizer = Arc::new(authorizer);
            casbin = Some(authorizer.clone());
            Some(authorizer as Arc<dyn mesos_acls::Authorizer>)
        }
        None if flags.any_authentication() => {
            casbin = None;
            tracing::info!("no --acls: authorizing with the secure default policy (own roles, no root tasks, everything else denied)");
            Some(Arc::new(mesos_acls::DefaultAuthorizer))
        }
        None => {
            casbin = None;
            tracing::warn!("SECURITY: no --acls and --insecure: every request is authorized");
            None
        }
    };
    Ok((crate::core::authz::Authz::new(authorizer, audit), casbin))
}

/// Re-reads `--acls` on SIGHUP; a bad file keeps the ACLs in force.
fn reload_acls_on_sighup(authorizer: Arc<mesos_acls::CasbinAuthorizer>, value: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: --acls will not reload");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let parsed = match mesos_acls::Acls::from_flag(&value) {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::warn!("SIGHUP: keeping the current ACLs: {e}");
                    continue;
                }
            };
            for warning in &parsed.warnings {
                tracing::warn!("--acls: {warning}");
            }
            match authorizer.reload(&parsed.acls).await {
                Ok(()) => tracing::info!(entries = parsed.acls.len(), "SIGHUP: reloaded --acls"),
                Err(e) => tracing::warn!("SIGHUP: keeping the current ACLs: {e}"),
            }
        }
    });
}
