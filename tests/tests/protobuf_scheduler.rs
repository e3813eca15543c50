//! Our own scheduler client speaking protobuf bodies and a protobuf event
//! stream runs a task to TASK_FINISHED.

use mesos_proto::v1::TaskState;
use mesos_tests::scheduler::{run_one_task, OneTask};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_scheduler_runs_a_task_to_finished() {
    let cluster = tokio::task::spawn_blocking(|| mesos_tests::Cluster::start(1))
        .await
        .expect("cluster");
    let states = run_one_task(
        &cluster.master_url(),
        OneTask {
            framework: "protobuf-test",
            task_id: "pb-task",
            command: "echo hello",
            until: TaskState::TaskFinished,
        },
    )
    .await;
    assert_eq!(
        states,
        [
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFinished
        ],
        "{}",
        cluster.logs()
    );
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("teardown");
}
