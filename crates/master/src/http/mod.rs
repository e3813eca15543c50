//! The master's HTTP edge: routes, Mesos's path aliases (`/master/...`,
//! unprefixed, trailing slash) and the libprocess message entry point.

pub mod operator;
pub mod scheduler;
pub mod state;
pub mod stream;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;

use crate::actor::MasterHandle;
use crate::flags::Flags;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The master task.
    pub master: MasterHandle,
    /// Parsed flags (for `/flags`).
    pub flags: Arc<Flags>,
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

/// The whole router, libprocess messages included.
pub fn router(state: AppState) -> Router {
    let limit = usize::try_from(state.flags.max_request_size).unwrap_or(usize::MAX);
    let mut router = Router::new();
    router = alias(router, "/api/v1/scheduler", any(scheduler::handle));
    router = alias(router, "/api/v1", any(operator::api));
    router = alias(router, "/state", get(state::state));
    router = alias(router, "/state.json", get(state::state));
    router = alias(router, "/state-summary", get(state::state_summary));
    router = alias(router, "/frameworks", get(state::frameworks));
    router = alias(router, "/slaves", get(state::slaves));
    router = alias(router, "/tasks", get(state::tasks));
    router = alias(router, "/roles", get(state::roles));
    router = alias(router, "/flags", get(state::flags));
    router = alias(router, "/health", get(state::health));
    router = alias(router, "/redirect", get(state::redirect));
    router = alias(router, "/teardown", post(operator::teardown));
    router = router
        .route("/version", get(state::version))
        .route("/version/", get(state::version))
        .route("/metrics/snapshot", get(state::metrics))
        .route("/metrics/snapshot/", get(state::metrics));
    let router = router
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state.clone());
    mesos_common::transport::with_messages(router, state.master)
}
