//! The master's HTTP edge: routes, Mesos's path aliases (`/master/...`,
//! unprefixed, trailing slash) and the libprocess message entry point.

pub mod explain;
pub mod operator;
pub mod reservations;
pub mod scheduler;
pub mod state;
pub mod stream;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;

use crate::actor::MasterHandle;
use crate::authn::{self, Authn, Gate};
use crate::flags::Flags;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The master task.
    pub master: MasterHandle,
    /// Parsed flags (for `/flags`).
    pub flags: Arc<Flags>,
    /// Authenticators.
    pub authn: Authn,
    /// The libprocess entry (SASL sessions, then the master task).
    pub gate: Gate,
    /// The authorizer in force (also inside the master task's config).
    pub authz: crate::core::authz::Authz,
}

/// Adds `path` under its Mesos aliases: as given, under `/master`, and with
/// a trailing slash.
fn alias(router: Router<AppState>, path: &str, route: MethodRouter<AppState>) -> Router<AppState> {
    let mut paths = vec![path.to_string(), format!("/master{path}")];
    let with_slash: Vec<String> = paths.iter().map(|p| format!("{p}/")).collect();
    paths.extend(with_slash);
    paths
        .into_iter()
        .fold(router, |router, p| router.route(&p, route.clone()))
}

/// The whole router, libprocess messages included. Each route sits in
/// its Mesos realm: `mesos-master-scheduler`, `-readonly`, `-readwrite`,
/// or none (`/health`, `/version`, `/redirect`).
pub fn router(state: AppState) -> Router {
    let limit = usize::try_from(state.flags.max_request_size).unwrap_or(usize::MAX);
    let authn = state.authn.clone();

    let mut scheduler = Router::new();
    scheduler = alias(scheduler, "/api/v1/scheduler", any(scheduler::handle));
    let scheduler = scheduler.route_layer(axum::middleware::from_fn_with_state(
        authn.clone(),
        authn::scheduler,
    ));

    let mut readonly = Router::new();
    readonly = alias(readonly, "/state", get(state::state));
    readonly = alias(readonly, "/state.json", get(state::state));
    readonly = alias(readonly, "/state-summary", get(state::state_summary));
    readonly = alias(readonly, "/frameworks", get(state::frameworks));
    readonly = alias(readonly, "/slaves", get(state::slaves));
    readonly = alias(readonly, "/tasks", get(state::tasks));
    readonly = alias(readonly, "/roles", get(state::roles));
    readonly = alias(readonly, "/flags", get(state::flags));
    let readonly = readonly
        .route("/metrics/snapshot", get(state::metrics))
        .route("/metrics/snapshot/", get(state::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            authn.clone(),
            authn::readonly,
        ));

    let mut readwrite = Router::new();
    readwrite = alias(readwrite, "/api/v1", any(operator::api));
    readwrite = alias(readwrite, "/teardown", post(operator::teardown));
    readwrite = alias(readwrite, "/reserve", post(reservations::reserve));
    readwrite = alias(readwrite, "/unreserve", post(reservations::unreserve));
    readwrite = alias(
        readwrite,
        "/create-volumes",
        post(reservations::create_volumes),
    );
    readwrite = alias(
        readwrite,
        "/destroy-volumes",
        post(reservations::destroy_volumes),
    );
    readwrite = readwrite
        .route("/acls/explain", get(explain::explain))
        .route("/acls/explain/", get(explain::explain));
    let readwrite = readwrite.route_layer(axum::middleware::from_fn_with_state(
        authn,
        authn::readwrite,
    ));

    let mut open = Router::new();
    open = alias(open, "/health", get(state::health));
    open = alias(open, "/redirect", get(state::redirect));
    let open = open
        .route("/version", get(state::version))
        .route("/version/", get(state::version));

    let router = Router::new()
        .merge(scheduler)
        .merge(readonly)
        .merge(readwrite)
        .merge(open)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state.clone());
    mesos_common::transport::with_messages(router, state.gate)
}
