//! The body of `/master/reserve`, `/master/unreserve`,
//! `/master/create-volumes` and `/master/destroy-volumes`: form-encoded
//! pairs whose `resources`/`volumes` value is a JSON array of resources.
//! Parsing never panics; an operation built from what parses converts an
//! agent's resources without panicking, and a conversion that applies
//! keeps every scalar quantity (reservations and volumes move resources,
//! they never create or destroy them).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mesos_common::conversions::{apply, conversions};
use mesos_common::resources::{parse_resource_array, Resources};
use mesos_proto::v1::offer::{operation, Operation};

fuzz_target!(|data: &[u8]| {
    let total = Resources::parse(
        "cpus:4;mem:1024;disk:1000;cpus(dev):1;ports:[31000-32000]",
    )
    .expect("fixed total parses");
    for (key, value) in url::form_urlencoded::parse(data) {
        let Ok(list) = parse_resource_array(&key, &value) else {
            continue;
        };
        for kind in [
            operation::Type::Reserve,
            operation::Type::Unreserve,
            operation::Type::Create,
            operation::Type::Destroy,
        ] {
            let mut op = Operation {
                r#type: Some(kind as i32),
                ..Default::default()
            };
            match kind {
                operation::Type::Reserve => {
                    op.reserve = Some(operation::Reserve {
                        resources: list.clone(),
                        source: vec![],
                    })
                }
                operation::Type::Unreserve => {
                    op.unreserve = Some(operation::Unreserve {
                        resources: list.clone(),
                    })
                }
                operation::Type::Create => {
                    op.create = Some(operation::Create {
                        volumes: list.clone(),
                    })
                }
                _ => {
                    op.destroy = Some(operation::Destroy {
                        volumes: list.clone(),
                    })
                }
            }
            let Ok(steps) = conversions(&op) else {
                continue;
            };
            if let Ok(after) = apply(&total, &steps, "fuzz") {
                for name in ["cpus", "mem", "disk"] {
                    assert_eq!(
                        after.scalar_fixed(name),
                        total.scalar_fixed(name),
                        "{name} changed: {total} -> {after}"
                    );
                }
            }
        }
    }
});
