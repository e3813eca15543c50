//! `GET /acls/explain`: would principal P be allowed action A on object O,
//! and which rule decides? For operators writing ACLs (read-write realm).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use mesos_acls::{Action, Object, Request};
use serde_json::json;

use super::AppState;

/// Query parameters: `action` (an ACL key such as `register_frameworks`),
/// `principal` (absent = an unauthenticated request), `object` (absent =
/// any object).
#[derive(Debug, serde::Deserialize)]
pub struct ExplainParams {
    action: Option<String>,
    principal: Option<String>,
    object: Option<String>,
}

/// The handler.
pub async fn explain(State(app): State<AppState>, Query(p): Query<ExplainParams>) -> Response {
    let Some(action) = p.action.as_deref() else {
        return (
            StatusCode::BAD_REQUEST,
            "Missing 'action' query parameter (an ACL action such as 'register_frameworks')",
        )
            .into_response();
    };
    let action: Action = match action.parse() {
        Ok(action) => action,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let request = Request {
        action,
        subject: p.principal.as_deref(),
        object: match p.object.as_deref() {
            Some(value) => Object::Value(value),
            None => Object::Any,
        },
    };
    let Some(authorizer) = &app.authz.0 else {
        return axum::Json(json!({
            "allowed": true,
            "rule": "none",
            "explanation": "no authorizer is in force (--insecure without --acls): every request is allowed",
        }))
        .into_response();
    };
    let decision = authorizer.authorize(&request);
    axum::Json(json!({
        "allowed": decision.is_allowed(),
        "rule": format!("{:?}", decision.rule),
        "explanation": decision.explain(&request),
    }))
    .into_response()
}
