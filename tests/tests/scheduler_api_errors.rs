//! `/api/v1/scheduler` refuses bad requests with Mesos's status codes and
//! messages, and keeps serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mesos_tests::{http_status, Cluster};

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One raw HTTP/1.1 request; reads the status, headers and (for
/// non-streaming answers) the body.
fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        text.push_str(&format!(
            "Authorization: {}\r\n",
            mesos_tests::framework_auth()
        ));
    }
    text.push_str("Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        headers.push_str(&line.to_ascii_lowercase());
    }
    let mut body = String::new();
    if status != 200 {
        let _ = reader.read_to_string(&mut body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn malformed_and_unauthorised_calls_get_mesos_status_codes() {
    let cluster = Cluster::start(0);
    let address = cluster.master_address();
    let path = "/api/v1/scheduler";
    let subscribe =
        br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#;

    let r = request(&address, "GET", path, &[], b"");
    assert_eq!(r.status, 405, "GET is not allowed");
    assert!(r.headers.contains("allow: post"), "{}", r.headers);

    let r = request(&address, "POST", path, &[], subscribe);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Expecting 'Content-Type' to be present"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[("Content-Type", "text/plain")],
        subscribe,
    );
    assert_eq!(r.status, 415, "{}", r.body);

    let r = request(&address, "POST", path, &[JSON], b"{\"type\":");
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("Failed to parse body into JSON"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[("Content-Type", "application/x-protobuf")],
        b"\xff\xff\xff\xff",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Failed to parse body into Call protobuf"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[JSON],
        br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"n"}}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("Missing required fields: subscribe.framework_info.user"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[JSON],
        br#"{"type":"NO_SUCH_CALL"}"#,
    );
    assert_eq!(r.status, 400, "unknown call type: {}", r.body);

    let r = request(&address, "POST", path, &[JSON], br#"{}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Expecting 'type' to be present"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[JSON, ("Accept", "text/html")],
        subscribe,
    );
    assert_eq!(r.status, 406, "{}", r.body);

    let r = request(
        &address,
        "POST",
        path,
        &[JSON, ("Mesos-Stream-Id", "x")],
        subscribe,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("Subscribe calls should not include the 'Mesos-Stream-Id' header"),
        "{}",
        r.body
    );

    let r = request(
        &address,
        "POST",
        path,
        &[JSON],
        br#"{"type":"REVIVE","framework_id":{"value":"nope"}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Framework cannot be found"), "{}", r.body);

    let r = request(&address, "POST", path, &[JSON], br#"{"type":"REVIVE"}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Expecting 'framework_id' to be present"),
        "{}",
        r.body
    );

    // A real subscription, then calls with a missing and a stale stream id.
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
                mesos_tests::framework_auth(),
                subscribe.len()
            )
            .as_bytes(),
        )
        .expect("write");
    stream.write_all(subscribe).expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let stream_id = head
        .lines()
        .find_map(|l| l.strip_prefix("mesos-stream-id: "))
        .expect("Mesos-Stream-Id header")
        .trim()
        .to_string();
    // chunk size line, then the record: "<len>\n{...SUBSCRIBED...}"
    let mut chunk = String::new();
    reader.read_line(&mut chunk).expect("chunk size");
    let mut record = String::new();
    reader.read_line(&mut record).expect("record length");
    let mut json = String::new();
    reader.read_line(&mut json).expect("record body");
    let framework_id = json
        .split("\"framework_id\":{\"value\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("SUBSCRIBED carries the framework id")
        .to_string();
    let revive = format!(r#"{{"type":"REVIVE","framework_id":{{"value":"{framework_id}"}}}}"#);
    let r = request(&address, "POST", path, &[JSON], revive.as_bytes());
    assert_eq!(r.status, 400);
    assert!(r.body.contains("'Mesos-Stream-Id'"), "{}", r.body);
    let r = request(
        &address,
        "POST",
        path,
        &[JSON, ("Mesos-Stream-Id", "stale")],
        revive.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("didn't match"), "{}", r.body);
    let r = request(
        &address,
        "POST",
        path,
        &[JSON, ("Mesos-Stream-Id", &stream_id)],
        revive.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let ack = format!(
        r#"{{"type":"ACKNOWLEDGE","framework_id":{{"value":"{framework_id}"}},"acknowledge":{{"agent_id":{{"value":"a"}},"task_id":{{"value":"t"}},"uuid":"AAAA"}}}}"#
    );
    let r = request(
        &address,
        "POST",
        path,
        &[JSON, ("Mesos-Stream-Id", &stream_id)],
        ack.as_bytes(),
    );
    assert_eq!(r.status, 400, "a uuid that is not 16 bytes: {}", r.body);

    // Oversized bodies are refused before parsing.
    let huge = vec![b' '; 17 * 1024 * 1024];
    let r = request(&address, "POST", path, &[JSON], &huge);
    assert_eq!(r.status, 413);

    // Still serving.
    assert_eq!(
        http_status(&format!("{}/health", cluster.master_url())),
        Some(200)
    );
    drop(reader);
}

#[test]
fn subscribe_failures_are_one_error_event_on_a_200_stream() {
    let cluster = Cluster::start(0);
    let address = cluster.master_address();
    let body = br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","role":"a b"}}}"#;
    let client = mesos_tests::blocking_client_as(
        mesos_tests::FRAMEWORK_PRINCIPAL,
        mesos_tests::FRAMEWORK_SECRET,
    );
    let response = client
        .post(format!("{}/api/v1/scheduler", cluster.master_url()))
        .header("Content-Type", "application/json")
        .body(&body[..])
        .send()
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("mesos-stream-id"));
    let text = response.text().expect("stream ends after the error");
    let records =
        mesos_proto::recordio::decode_all(text.as_bytes(), 1 << 20).expect("valid RecordIO");
    assert_eq!(records.len(), 1, "{text}");
    let event: serde_json::Value = serde_json::from_slice(&records[0]).expect("JSON event");
    assert_eq!(event["type"], "ERROR");
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid role"),
        "{event}"
    );
    let _ = address;
}

#[test]
fn version_is_numeric_and_classic_aliases_answer() {
    let cluster = Cluster::start(0);
    let url = cluster.master_url();
    let version = mesos_tests::get_json(&format!("{url}/version")).expect("version JSON");
    let text = version["version"].as_str().expect("version string");
    assert!(text.split('.').all(|p| p.parse::<u32>().is_ok()), "{text}");
    for path in [
        "/slaves",
        "/master/slaves",
        "/master/frameworks/",
        "/tasks",
        "/master/state",
        "/state",
        "/master/roles",
        "/master/flags",
        "/metrics/snapshot",
    ] {
        assert_eq!(http_status(&format!("{url}{path}")), Some(200), "{path}");
    }
    let client = mesos_tests::blocking_client_as(
        mesos_tests::OPERATOR_PRINCIPAL,
        mesos_tests::OPERATOR_SECRET,
    );
    let r = client
        .get(format!("{url}/master/state?jsonp=cb"))
        .send()
        .expect("jsonp");
    assert_eq!(r.headers()["content-type"], "text/javascript");
    let body = r.text().expect("body");
    assert!(body.starts_with("cb({") && body.ends_with(");"), "{body}");
    let r = client
        .get(format!("{url}/tasks?limit=x"))
        .send()
        .expect("bad limit");
    assert_eq!(r.status().as_u16(), 400);
}
