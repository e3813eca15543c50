//! HTTP conventions shared by the master's and the agent's endpoints:
//! Mesos's content types, JSONP, and error bodies.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

/// `application/json`.
pub const APPLICATION_JSON: &str = "application/json";
/// `application/x-protobuf`.
pub const APPLICATION_PROTOBUF: &str = "application/x-protobuf";

/// The two encodings the v1 APIs speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Mesos JSON.
    Json,
    /// Binary protobuf.
    Protobuf,
}

impl ContentType {
    /// The media type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => APPLICATION_JSON,
            ContentType::Protobuf => APPLICATION_PROTOBUF,
        }
    }
}

/// An HTTP error in Mesos's shape: a status and a plain-text reason.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// Status code.
    pub status: StatusCode,
    /// Body text.
    pub message: String,
    /// Extra headers (e.g. `Allow`, `WWW-Authenticate`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl HttpError {
    /// An error with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 405 with `Allow: POST` (or what is given).
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ '{allowed}' }}"),
        );
        e.headers
            .push((header::ALLOW, HeaderValue::from_static(allowed)));
        e
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The request body's encoding, checked as Mesos does: missing is 400,
/// anything but the two exact media types is 415.
pub fn request_content_type(headers: &HeaderMap) -> Result<ContentType, HttpError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| HttpError::bad_request("Expecting 'Content-Type' to be present"))?;
    match value.to_str().unwrap_or_default() {
        APPLICATION_JSON => Ok(ContentType::Json),
        APPLICATION_PROTOBUF => Ok(ContentType::Protobuf),
        other => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}, got '{}'",
                other.chars().take(100).collect::<String>()
            ),
        )),
    }
}

/// Decodes a v1 API request body (a `Call`) in its encoding, with Mesos's
/// error texts: `Failed to parse body into JSON: ...`, `Failed to convert
/// JSON into Call protobuf: ...`, `Failed to parse body into Call protobuf:
/// ...`, all 400.
pub fn decode_body<M>(content_type: ContentType, body: &[u8]) -> Result<M, HttpError>
where
    M: prost::Message + prost::Name + Default + 'static,
{
    use mesos_proto::json::ConvertError;
    let name = M::NAME;
    let message = match content_type {
        ContentType::Json => match mesos_proto::json::from_slice::<M>(body) {
            Ok(m) => return Ok(m),
            Err(ConvertError::Json(reason)) => format!("Failed to parse body into JSON: {reason}"),
            Err(ConvertError::Shape { reason, .. }) => {
                format!("Failed to convert JSON into {name} protobuf: {reason}")
            }
            Err(other) => format!("Failed to convert JSON into {name} protobuf: {other}"),
        },
        ContentType::Protobuf => match mesos_proto::json::decode_checked::<M>(body) {
            Ok(m) => return Ok(m),
            Err(ConvertError::Protobuf { reason, .. }) => {
                format!("Failed to parse body into {name} protobuf: {reason}")
            }
            Err(other) => format!("Failed to parse body into {name} protobuf: {other}"),
        },
    };
    Err(HttpError::bad_request(message))
}

/// The response encoding from `Accept`: absent or empty means JSON; `None`
/// when neither encoding is acceptable (406).
pub fn negotiate(headers: &HeaderMap) -> Option<ContentType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(ContentType::Json);
    };
    if accept.trim().is_empty() {
        return Some(ContentType::Json);
    }
    let mut best: Option<(f32, ContentType)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let media = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let candidate = match media.as_str() {
            APPLICATION_JSON | "application/*" | "*/*" => ContentType::Json,
            APPLICATION_PROTOBUF => ContentType::Protobuf,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// A JSON response, wrapped as JSONP (`cb(<json>);`, `text/javascript`)
/// when the query names a callback.
pub fn json_response(value: &serde_json::Value, jsonp: Option<&str>) -> Response {
    let body = mesos_proto::json::ascii_json(value);
    match jsonp.filter(|cb| is_valid_callback(cb)) {
        Some(callback) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{callback}({body});"),
        )
            .into_response(),
        None => ([(header::CONTENT_TYPE, APPLICATION_JSON)], body).into_response(),
    }
}

/// JSONP callbacks are identifiers and dotted paths only, so a callback
/// parameter can never inject script.
fn is_valid_callback(callback: &str) -> bool {
    !callback.is_empty()
        && callback.len() <= 128
        && callback
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn content_type_rules_follow_mesos() {
        assert_eq!(
            request_content_type(&headers(&[]))
                .expect_err("missing")
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            request_content_type(&headers(&[("content-type", "text/plain")]))
                .expect_err("wrong")
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            request_content_type(&headers(&[(
                "content-type",
                "application/json; charset=utf-8"
            )]))
            .expect_err("params")
            .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            request_content_type(&headers(&[("content-type", "application/x-protobuf")])).ok(),
            Some(ContentType::Protobuf)
        );
    }

    #[test]
    fn bodies_decode_with_mesos_error_texts() {
        use mesos_proto::v1::scheduler::Call;
        let e = decode_body::<Call>(ContentType::Json, b"{").expect_err("not JSON");
        assert!(
            e.message.starts_with("Failed to parse body into JSON: "),
            "{}",
            e.message
        );
        let e = decode_body::<Call>(ContentType::Json, b"[]").expect_err("not an object");
        assert!(
            e.message
                .starts_with("Failed to convert JSON into Call protobuf: "),
            "{}",
            e.message
        );
        let e = decode_body::<Call>(
            ContentType::Json,
            br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"n"}}}"#,
        )
        .expect_err("user missing");
        assert_eq!(
            e.message,
            "Failed to convert JSON into Call protobuf: Missing required fields: subscribe.framework_info.user"
        );
        let e = decode_body::<Call>(ContentType::Protobuf, b"\xff\xff").expect_err("not protobuf");
        assert!(
            e.message
                .starts_with("Failed to parse body into Call protobuf: "),
            "{}",
            e.message
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(&headers(&[])), Some(ContentType::Json));
        assert_eq!(
            negotiate(&headers(&[("accept", "application/x-protobuf")])),
            Some(ContentType::Protobuf)
        );
        assert_eq!(
            negotiate(&headers(&[("accept", "*/*")])),
            Some(ContentType::Json)
        );
        assert_eq!(negotiate(&headers(&[("accept", "text/html")])), None);
        assert_eq!(
            negotiate(&headers(&[(
                "accept",
                "application/json;q=0.5, application/x-protobuf"
            )])),
            Some(ContentType::Protobuf)
        );
    }

    #[test]
    fn jsonp_wraps_only_safe_callbacks() {
        let v = serde_json::json!({"a": 1});
        let r = json_response(&v, Some("angular.callbacks._0"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/javascript");
        let r = json_response(&v, Some("alert(1)//"));
        assert_eq!(r.headers()[header::CONTENT_TYPE], APPLICATION_JSON);
    }
}

/// The principal an HTTP request authenticated as, if any: a request
/// extension set by the master's and the agent's realm middleware, and an
/// extractor handlers take directly (`Principal(principal): Principal`),
/// `None` outside a realm.
#[derive(Clone, Debug, Default)]
pub struct Principal(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Principal>()
            .cloned()
            .unwrap_or_default())
    }
}
