//! The master claims no capability it does not implement: Mesos 1.11's
//! AGENT_UPDATE, AGENT_DRAINING and QUOTA_V2 are absent from
//! `/master/state`, GET_MASTER and SUBSCRIBED; the agent likewise claims
//! none of the resource-provider, volume-resize, operation-feedback or
//! draining capabilities.

use mesos_tests::{
    blocking_client_as, get_json, Cluster, RecordIo, FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET,
    OPERATOR_PRINCIPAL, OPERATOR_SECRET,
};
use serde_json::Value;

/// The `capabilities` of a protobuf-JSON message: absent or an empty list
/// both mean none.
fn capability_list(message: &Value) -> Vec<Value> {
    match message.get("capabilities") {
        None => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(other) => panic!("capabilities is a list, not {other}"),
    }
}

#[test]
fn master_claims_no_capabilities_in_state_get_master_and_subscribed() {
    let cluster = Cluster::start(1);
    let state = get_json(&format!("{}/master/state", cluster.master_url())).expect("state");
    assert!(state["id"].is_string(), "{state}");
    assert_eq!(state["capabilities"], serde_json::json!([]), "{state}");

    let response = blocking_client_as(OPERATOR_PRINCIPAL, OPERATOR_SECRET)
        .post(format!("{}/api/v1", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(r#"{"type":"GET_MASTER"}"#)
        .send()
        .expect("GET_MASTER should be answered");
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().expect("GET_MASTER answers JSON");
    assert_eq!(answer["type"], "GET_MASTER", "{answer}");
    let master_info = &answer["get_master"]["master_info"];
    assert_eq!(master_info["id"], state["id"], "{answer}");
    assert_eq!(
        capability_list(master_info),
        Vec::<Value>::new(),
        "{answer}"
    );

    // A scheduler's SUBSCRIBED carries the same MasterInfo.
    let body = serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "nobody", "name": "capabilities-test"}}});
    let stream = blocking_client_as(FRAMEWORK_PRINCIPAL, FRAMEWORK_SECRET)
        .post(format!("{}/api/v1/scheduler", cluster.master_url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .expect("SUBSCRIBE should be answered");
    assert_eq!(stream.status().as_u16(), 200);
    let event = RecordIo::new(stream).next_json().expect("a first event");
    assert_eq!(event["type"], "SUBSCRIBED", "{event}");
    let master_info = &event["subscribed"]["master_info"];
    assert_eq!(master_info["id"], state["id"], "{event}");
    assert_eq!(capability_list(master_info), Vec::<Value>::new(), "{event}");

    // The agent, in its own /state and as the master lists it.
    let agent = get_json(&format!(
        "http://127.0.0.1:{}/state",
        cluster.agent_ports[0]
    ))
    .expect("agent state");
    let slaves =
        get_json(&format!("{}/master/slaves", cluster.master_url())).expect("master slaves");
    let listed = &slaves["slaves"][0];
    for capabilities in [&agent["capabilities"], &listed["capabilities"]] {
        let names: Vec<&str> = capabilities
            .as_array()
            .expect("agent capabilities are listed")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(names.contains(&"MULTI_ROLE"), "{names:?}");
        // GROW_VOLUME and SHRINK_VOLUME are implemented (volumes are
        // directories, so resizing changes only their accounting).
        assert!(names.contains(&"RESIZE_VOLUME"), "{names:?}");
        for unimplemented in [
            "RESOURCE_PROVIDER",
            "AGENT_OPERATION_FEEDBACK",
            "AGENT_DRAINING",
        ] {
            assert!(
                !names.contains(&unimplemented),
                "{unimplemented}: {names:?}"
            );
        }
    }
}
