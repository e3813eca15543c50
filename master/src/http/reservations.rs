//! The classic operator endpoints for reservations and volumes:
//! `/master/reserve`, `/master/unreserve`, `/master/create-volumes` and
//! `/master/destroy-volumes`, each a form-encoded POST of `slaveId` and a
//! JSON array of resources (`resources` or `volumes`). 202 once the change
//! is in the registry on disk; 400 invalid, 403 denied, 409 the agent does
//! not have the resources available.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use mesos_proto::v1::offer::{operation, Operation};

use super::AppState;
use crate::authn::Principal;
use crate::core::operations::OperationError;

/// Which endpoint, and the body parameter that carries its resources.
#[derive(Clone, Copy)]
enum Endpoint {
    Reserve,
    Unreserve,
    CreateVolumes,
    DestroyVolumes,
}

impl Endpoint {
    fn parameter(self) -> &'static str {
        match self {
            Endpoint::Reserve | Endpoint::Unreserve => "resources",
            Endpoint::CreateVolumes | Endpoint::DestroyVolumes => "volumes",
        }
    }
}

/// Parses the body of one of the four endpoints into the agent id and the
/// operation. Errors are the 400 texts Mesos gives.
fn parse(endpoint: Endpoint, body: &[u8]) -> Result<(String, Operation), String> {
    let values: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let agent_id = get("slaveId")
        .ok_or("Missing 'slaveId' query parameter in the request body")?
        .to_string();
    let key = endpoint.parameter();
    let text = get(key).ok_or(format!(
        "Missing '{key}' query parameter in the request body"
    ))?;
    let resources = mesos_common::resources::parse_resource_array(key, text)?;
    let mut op = Operation::default();
    match endpoint {
        Endpoint::Reserve => {
            let source = match get("source") {
                Some(text) => mesos_common::resources::parse_resource_array("source", text)?,
                None => Vec::new(),
            };
            op.r#type = Some(operation::Type::Reserve as i32);
            op.reserve = Some(operation::Reserve { resources, source });
        }
        Endpoint::Unreserve => {
            op.r#type = Some(operation::Type::Unreserve as i32);
            op.unreserve = Some(operation::Unreserve { resources });
        }
        Endpoint::CreateVolumes => {
            op.r#type = Some(operation::Type::Create as i32);
            op.create = Some(operation::Create { volumes: resources });
        }
        Endpoint::DestroyVolumes => {
            op.r#type = Some(operation::Type::Destroy as i32);
            op.destroy = Some(operation::Destroy { volumes: resources });
        }
    }
    Ok((agent_id, op))
}

/// Runs an operator operation and waits for the registry flush.
pub(crate) async fn run(
    app: &AppState,
    agent_id: String,
    op: Operation,
    principal: Option<String>,
) -> Response {
    let outcome = app
        .master
        .write(move |m, now| m.operator_operation(&agent_id, op, principal.as_deref(), now))
        .await;
    match outcome {
        Some(Ok(durable)) => match durable.await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response(),
        },
        Some(Err(e)) => error_response(e),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down").into_response(),
    }
}

pub(crate) fn error_response(e: OperationError) -> Response {
    match e {
        OperationError::BadRequest(m) => (StatusCode::BAD_REQUEST, m).into_response(),
        OperationError::Conflict(m) => (StatusCode::CONFLICT, m).into_response(),
        OperationError::Forbidden(denied) => super::state::forbidden(&denied),
    }
}

async fn handle(
    app: AppState,
    principal: Option<String>,
    endpoint: Endpoint,
    body: Bytes,
) -> Response {
    match parse(endpoint, &body) {
        Ok((agent_id, op)) => run(&app, agent_id, op, principal).await,
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

/// `POST /master/reserve`.
pub async fn reserve(
    State(app): State<AppState>,
    Principal(p): Principal,
    body: Bytes,
) -> Response {
    handle(app, p, Endpoint::Reserve, body).await
}

/// `POST /master/unreserve`.
pub async fn unreserve(
    State(app): State<AppState>,
    Principal(p): Principal,
    body: Bytes,
) -> Response {
    handle(app, p, Endpoint::Unreserve, body).await
}

/// `POST /master/create-volumes`.
pub async fn create_volumes(
    State(app): State<AppState>,
    Principal(p): Principal,
    body: Bytes,
) -> Response {
    handle(app, p, Endpoint::CreateVolumes, body).await
}

/// `POST /master/destroy-volumes`.
pub async fn destroy_volumes(
    State(app): State<AppState>,
    Principal(p): Principal,
    body: Bytes,
) -> Response {
    handle(app, p, Endpoint::DestroyVolumes, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    const DISK: &str = r#"[{"name":"disk","type":"SCALAR","scalar":{"value":64},
        "reservations":[{"type":"DYNAMIC","role":"dev","principal":"ops"}]}]"#;

    #[test]
    fn missing_parameters_are_named() {
        let e = parse(Endpoint::Reserve, &form(&[("resources", DISK)])).expect_err("refused");
        assert_eq!(e, "Missing 'slaveId' query parameter in the request body");
        let e = parse(Endpoint::CreateVolumes, &form(&[("slaveId", "a")])).expect_err("refused");
        assert_eq!(e, "Missing 'volumes' query parameter in the request body");
    }

    #[test]
    fn malformed_resources_are_refused_with_the_reason() {
        for (bad, needle) in [
            ("not json", "Error in parsing 'resources'"),
            (r#"{"name":"cpus"}"#, "expected a JSON array"),
            (
                r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]"#,
                "Resource 0 is invalid",
            ),
            (r#"[{"name":7}]"#, "resource 0"),
            ("[1]", "resource 0"),
        ] {
            let e = parse(
                Endpoint::Reserve,
                &form(&[("slaveId", "a"), ("resources", bad)]),
            )
            .expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn a_reserve_body_becomes_a_reserve_operation() {
        let (agent, op) = parse(
            Endpoint::Reserve,
            &form(&[("slaveId", "S1"), ("resources", DISK)]),
        )
        .expect("valid");
        assert_eq!(agent, "S1");
        assert_eq!(op.r#type, Some(operation::Type::Reserve as i32));
        assert_eq!(op.reserve.expect("valid").resources.len(), 1);
    }
}
