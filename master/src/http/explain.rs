//! `GET /acls/explain` and the operator call `AUTHORIZE_EXPLAIN` (ours):
//! would principal P be allowed action A on object O, and which rule
//! decides? For operators writing ACLs (read-write realm).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use mesos_acls::{Action, Object, Request};
use serde_json::json;

use super::AppState;
use crate::core::authz::Authz;

/// Query parameters: `action` (an ACL key such as `register_frameworks`),
/// `principal` (absent = an unauthenticated request), `object` (absent =
/// any object).
#[derive(Debug, serde::Deserialize)]
pub struct ExplainParams {
    action: Option<String>,
    principal: Option<String>,
    object: Option<String>,
}

/// One answer: the decision, the rule that gave it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// Whether the request would be allowed.
    pub allowed: bool,
    /// The rule that decides (`none` when no authorizer is in force).
    pub rule: String,
    /// One sentence for the operator.
    pub explanation: String,
}

/// Asks the authorizer in force; `Err` names what is wrong with `action`.
/// Nothing is audited: this is a question, not a request.
pub fn explain_request(
    authz: &Authz,
    action: &str,
    principal: Option<&str>,
    object: Option<&str>,
) -> Result<Explained, String> {
    let action: Action = action
        .parse()
        .map_err(|e: mesos_acls::UnknownAction| e.to_string())?;
    let request = Request {
        action,
        subject: principal,
        object: match object {
            Some(value) => Object::Value(value),
            None => Object::Any,
        },
    };
    let Some(authorizer) = authz.authorizer() else {
        return Ok(Explained {
            allowed: true,
            rule: "none".into(),
            explanation:
                "no authorizer is in force (--insecure without --acls): every request is allowed"
                    .into(),
        });
    };
    let decision = authorizer.authorize(&request);
    Ok(Explained {
        allowed: decision.is_allowed(),
        rule: format!("{:?}", decision.rule),
        explanation: decision.explain(&request),
    })
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
    match explain_request(
        &app.authz,
        action,
        p.principal.as_deref(),
        p.object.as_deref(),
    ) {
        Ok(answer) => axum::Json(json!({
            "allowed": answer.allowed,
            "rule": answer.rule,
            "explanation": answer.explanation,
        }))
        .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
