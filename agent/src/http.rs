//! The agent's HTTP surface: `/state`, `/flags`, `/health`, `/version`,
//! `/metrics/snapshot`, `/files/*` and `/api/v1/executor`, each also under
//! `/slave(1)/` and with a trailing slash, plus libprocess messages
//! (through `mesos_common::transport::with_messages`). Handlers only
//! translate.
//!
//! Realms (see [`crate::auth`]): `/state`, `/flags`, `/metrics/snapshot`
//! and `/files/*` are in `mesos-agent-readonly`; `/api/v1/executor` checks
//! executor tokens itself (`mesos-agent-executor`); `/health` and
//! `/version` are open.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::StatusCode;
use mesos_common::http::{json_response, HttpError};
use mesos_common::transport::with_messages;
use serde_json::json;

use crate::agent::AgentHandle;
use crate::auth::{self, HttpAuth, Principal};
use crate::executor_api::{executor_api, ExecutorApi};
use crate::files::{self, Files};
use crate::flags::Config;
use crate::sandbox_authz::SandboxAuthz;

#[derive(Debug, Default, serde::Deserialize)]
struct JsonpQuery {
    jsonp: Option<String>,
}

/// Every spelling of an endpoint path that Mesos answers.
fn spellings(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["", "/slave(1)"] {
        out.push(format!("{prefix}{path}"));
        out.push(format!("{prefix}{path}/"));
    }
    out
}

/// Builds the agent's router.
pub fn router(agent: AgentHandle, config: Arc<Config>, files: Files, auth: HttpAuth) -> Router {
    let readonly = from_fn_with_state(auth.clone(), auth::readonly);
    let mut state_routes = Router::new();
    for path in ["/state", "/state.json"].iter().flat_map(|p| spellings(p)) {
        state_routes = state_routes.route(&path, get(state));
    }
    let state_routes = state_routes
        .route_layer(readonly.clone())
        .with_state((agent.clone(), files.authz().clone()));

    let mut executor_routes = Router::new();
    for path in spellings("/api/v1/executor") {
        executor_routes = executor_routes.route(&path, any(executor_api));
    }
    let executor_routes = executor_routes.with_state(ExecutorApi {
        agent: agent.clone(),
        auth,
    });

    let mut config_routes = Router::new();
    for path in ["/flags", "/flags.json"].iter().flat_map(|p| spellings(p)) {
        config_routes = config_routes.route(&path, get(flags));
    }
    let config_routes = config_routes
        .route_layer(readonly.clone())
        .with_state((config, files.authz().clone()));

    let mut misc = Router::new();
    for path in spellings("/health") {
        misc = misc.route(&path, get(|| async { StatusCode::OK }));
    }
    for path in spellings("/version") {
        misc = misc.route(&path, get(version));
    }

    let mut file_routes = Router::new();
    for (name, handler) in [("browse", 0), ("read", 1), ("download", 2)] {
        for path in [format!("/files/{name}"), format!("/files/{name}.json")]
            .iter()
            .flat_map(|p| spellings(p))
        {
            file_routes = match handler {
                0 => file_routes.route(&path, get(files::browse)),
                1 => file_routes.route(&path, get(files::read)),
                _ => file_routes.route(&path, get(files::download)),
            };
        }
    }
    let mut metrics_routes = Router::new();
    for path in spellings("/metrics/snapshot") {
        metrics_routes = metrics_routes.route(&path, get(metrics));
    }
    let metrics_routes = metrics_routes
        .route_layer(readonly.clone())
        .with_state((agent.clone(), files.authz().clone()));

    let file_routes = file_routes.route_layer(readonly).with_state(files);

    let router = Router::new()
        .merge(state_routes)
        .merge(executor_routes)
        .merge(config_routes)
        .merge(misc)
        .merge(file_routes)
        .merge(metrics_routes)
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 Not Found.") });
    with_messages(router, agent.sink())
}

/// `GET /state`: filtered by what the principal may view (see
/// [`crate::agent::state_json`]).
async fn state(
    State((agent, authz)): State<(AgentHandle, SandboxAuthz)>,
    Principal(principal): Principal,
    Query(query): Query<JsonpQuery>,
) -> Response {
    match agent.state(authz, principal).await {
        Some(value) => json_response(&value, query.jsonp.as_deref()),
        None => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Agent is shutting down")
            .into_response(),
    }
}

/// `GET /metrics/snapshot`: `slave/*` and `system/*` (read-only realm,
/// then `get_endpoints` on the path, as on the master).
async fn metrics(
    State((agent, authz)): State<(AgentHandle, SandboxAuthz)>,
    Principal(principal): Principal,
    Query(query): Query<JsonpQuery>,
) -> Response {
    if let Err(denied) = authz.check_endpoint(principal.as_deref(), "/metrics/snapshot") {
        return denied.into_response();
    }
    // Read outside the agent's task: it is file IO.
    let system = mesos_common::system::metrics();
    match agent.metrics().await {
        Some(mut map) => {
            for (name, value) in system {
                map.insert(name.to_string(), json!(value));
            }
            json_response(&serde_json::Value::Object(map), query.jsonp.as_deref())
        }
        None => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "Agent is shutting down")
            .into_response(),
    }
}

/// `GET /flags`: needs `view_flags`, as on Mesos's agent.
async fn flags(
    State((config, authz)): State<(Arc<Config>, SandboxAuthz)>,
    Principal(principal): Principal,
    Query(query): Query<JsonpQuery>,
) -> Response {
    if let Err(denied) = authz.check_view_flags(principal.as_deref()) {
        return denied.into_response();
    }
    json_response(&config.flags_json(), query.jsonp.as_deref())
}

async fn version(Query(query): Query<JsonpQuery>) -> Response {
    json_response(
        &json!({
            "version": mesos_common::MESOS_VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "",
        }),
        query.jsonp.as_deref(),
    )
}
