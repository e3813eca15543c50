//! `mesos-agent`: parses and validates flags, recovers, serves HTTP and
//! libprocess messages, and registers with the master. SIGTERM stops the
//! agent; executors keep running (they are checkpointed and re-adopted by
//! the next agent).

use std::sync::Arc;

use anyhow::Context;
use mesos_agent::agent::Agent;
use mesos_agent::auth::{self, HttpAuth};
use mesos_agent::files::Files;
use mesos_agent::flags::{Config, Flags};
use mesos_agent::launcher::{self, LauncherKind};
use mesos_agent::{detect, http};
use mesos_common::auth::audit::AuditLog;
use mesos_common::flags::{fail, parse_or_exit};
use mesos_common::resources::{to_state_json, Resources};
use mesos_common::transport::Transport;

fn main() {
    mesos_common::init_logging("info");
    let flags: Flags = parse_or_exit();
    let mut config = Config::from_flags(flags).unwrap_or_else(|e| fail(e));
    // An explicit --isolation replaces our hardened default: say what the
    // tasks go without, so a Mesos-style flag does not weaken them quietly.
    for (isolator, without) in [
        ("linux/nnp", "no_new_privs"),
        ("linux/seccomp", "the default seccomp profile"),
        ("linux/capabilities", "the minimal capability set"),
    ] {
        if !config.isolation.iter().any(|n| n == isolator) {
            tracing::warn!(
                "SECURITY: --isolation does not include {isolator}: tasks run without {without}"
            );
        }
    }
    probe_namespaces(&mut config);
    let tls = mesos_common::tls::Tls::from_env().unwrap_or_else(|e| fail(e));
    let work_dir = config.flags.work_dir.clone();
    let sandboxes = work_dir.join("slaves");
    if let Err(e) = std::fs::create_dir_all(&sandboxes) {
        fail(format!(
            "cannot create --work_dir {}: {e}",
            work_dir.display()
        ));
    }
    // Checkpoints are the agent's alone.
    let meta = work_dir.join("meta");
    if let Err(e) = std::fs::create_dir_all(&meta).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&meta, std::fs::Permissions::from_mode(0o700))
    }) {
        fail(format!("cannot create {}: {e}", meta.display()));
    }
    config.jwt_key = auth::executor_key(&config, &meta)
        .unwrap_or_else(|e| fail(format!("executor token key: {e}")));
    let audit = match &config.flags.audit_log {
        Some(path) => AuditLog::open(path)
            .unwrap_or_else(|e| fail(format!("cannot open --audit_log {}: {e}", path.display()))),
        None => AuditLog::disabled(),
    };
    for warning in config.security_warnings() {
        tracing::warn!("{warning}");
    }
    let executor = config.launcher_dir.join("mesos-executor");
    if !executor.is_file() {
        tracing::warn!(path = %executor.display(),
            "the built-in executor is missing: command tasks and task groups will fail (set --launcher_dir)");
    }
    let resources_text = detect::complete_resources(config.flags.resources.as_deref(), &work_dir);
    let resources = Resources::parse_with_default_role(&resources_text, &config.flags.default_role)
        .unwrap_or_else(|e| fail(format!("invalid --resources: {e}")));
    let kind = match config.flags.launcher.as_deref() {
        Some(name) => name.parse::<LauncherKind>().unwrap_or_else(|e| fail(e)),
        None => launcher::default_kind(),
    };
    let launcher = launcher::create(
        kind,
        &config.flags.cgroups_hierarchy,
        &config.flags.cgroups_root,
    )
    .unwrap_or_else(|e| fail(e));
    let sandbox_authz = mesos_agent::sandbox_authz::SandboxAuthz::from_flags(
        config.flags.acls.as_deref(),
        config.flags.authenticate_http_readonly,
        audit.clone(),
    )
    .unwrap_or_else(|e| fail(e));
    let files = Files::new(&sandboxes)
        .unwrap_or_else(|e| fail(format!("cannot use {}: {e}", sandboxes.display())))
        .with_authz(sandbox_authz);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    match runtime.block_on(run(config, launcher, resources, files, audit, tls)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mesos-agent: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(
    mut config: Config,
    launcher: Arc<dyn launcher::Launcher>,
    resources: Resources,
    files: Files,
    audit: AuditLog,
    tls: Option<Arc<mesos_common::tls::Tls>>,
) -> anyhow::Result<()> {
    let limits = mesos_common::connections::Limits::at_startup(
        &config.flags.connections,
        // Its executors connect from its own address.
        true,
    );
    let listener = mesos_common::net::bind_listener(config.flags.ip, config.flags.port)
        .with_context(|| format!("Failed to bind {}:{}", config.flags.ip, config.flags.port))?;
    config.flags.port = listener
        .local_addr()
        .context("reading the bound address")?
        .port();
    let config = Arc::new(config);
    let resources_json = to_state_json(&resources);
    let agent = Agent::new(
        config.clone(),
        launcher.clone(),
        Transport::new(mesos_common::net::connector(tls.clone())),
        resources.into_vec(),
        resources_json,
    );
    tracing::info!(pid = %agent.pid(), master = %config.master, launcher = launcher.name(),
        work_dir = %config.flags.work_dir.display(), "agent started");
    let http_auth = HttpAuth::new(&config, audit);
    reload_http_credentials_on_sighup(&config);
    files.reload_acls_on_sighup();
    let files = files.with_agent(agent.handle());
    let app = http::router(agent.handle(), config.clone(), files, http_auth);
    if let Some(tls) = &tls {
        tls.watch(std::time::Duration::from_secs(1));
    }
    let server = tokio::spawn(mesos_common::net::serve_tls(listener, app, tls, limits));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let result = tokio::select! {
        result = agent.run() => result,
        _ = sigterm.recv() => {
            tracing::info!("received SIGTERM; exiting (executors keep running and are recovered on restart)");
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; exiting (executors keep running and are recovered on restart)");
            Ok(())
        }
        served = server => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("HTTP server failed: {e}")),
            Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
        },
    };
    result
}

/// Re-reads `--http_credentials` on SIGHUP (the store is shared with the
/// HTTP authenticators); a bad file keeps the credentials in force.
fn reload_http_credentials_on_sighup(config: &mesos_agent::flags::Config) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Some(store), Some(path)) = (
        config.http_credentials.clone(),
        config.flags.http_credentials.clone(),
    ) else {
        return;
    };
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: --http_credentials will not reload");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match mesos_common::auth::credentials::load_credentials(&path) {
                Ok(credentials) => {
                    let count = credentials.len();
                    store.replace(credentials);
                    tracing::info!(principals = count, "SIGHUP: reloaded --http_credentials");
                }
                Err(e) => tracing::warn!("SIGHUP: keeping the current --http_credentials: {e}"),
            }
        }
    });
}

/// Starts one process in the namespaces the isolators will ask for, so a host
/// that cannot create them is told now. Asked for by `--isolation`, that is a
/// startup error; our default drops them with a warning.
fn probe_namespaces(config: &mut Config) {
    use mesos_agent::isolators::namespaces::probe;
    let mut wanted = mesos_agent::isolators::ContainerLaunchInfo::default();
    for kind in &config.namespaces {
        wanted.merge(mesos_agent::isolators::ContainerLaunchInfo {
            namespaces: kind.namespaces(),
            ..Default::default()
        });
    }
    let wanted = wanted.namespaces;
    if wanted == mesos_agent::sys::Namespaces::default() {
        return;
    }
    let Err(why) = probe(wanted) else {
        return;
    };
    let names: Vec<String> = config
        .isolation
        .iter()
        .filter(|n| n.starts_with("namespaces/"))
        .cloned()
        .collect();
    if !config.isolation_defaulted {
        fail(format!(
            "--isolation={}: this host cannot create the namespaces: {why}",
            names.join(",")
        ));
    }
    tracing::warn!(
        "SECURITY: {} (our default) not possible here: {why}; tasks share the agent's namespaces",
        names.join(",")
    );
    config.isolation.retain(|n| !n.starts_with("namespaces/"));
    config.namespaces.clear();
}
