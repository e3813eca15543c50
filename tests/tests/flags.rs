//! Both binaries take Mesos's flag names (also from `MESOS_<NAME>`), explain
//! them in `--help`, and refuse a bad flag with one line and exit code 1.

use std::process::Command;

use mesos_tests::binary;

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(binary(name));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_one_line_and_exit_code_1() {
    for (name, args) in [
        ("mesos-master", vec!["--port=notaport", "--work_dir=/tmp/x"]),
        (
            "mesos-master",
            vec!["--allocation_interval=soon", "--work_dir=/tmp/x"],
        ),
        ("mesos-master", vec!["--no_such_flag=1"]),
        ("mesos-master", vec![]),
        (
            "mesos-agent",
            vec![
                "--master=127.0.0.1:5050",
                "--work_dir=/tmp/x",
                "--resources=cpus:x",
            ],
        ),
        ("mesos-agent", vec!["--work_dir=/tmp/x"]),
    ] {
        let (code, _, stderr) = run(name, &args, &[]);
        assert_eq!(code, 1, "{name} {args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name} {args:?} should say one line: {stderr}"
        );
    }
}

#[test]
fn help_describes_flags_by_their_mesos_names() {
    let (code, stdout, _) = run("mesos-master", &["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--work_dir",
        "--allocation_interval",
        "--agent_ping_timeout",
        "--max_agent_ping_timeouts",
        "--registry",
    ] {
        assert!(stdout.contains(flag), "master --help lacks {flag}");
    }
    let (code, stdout, _) = run("mesos-agent", &["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--master",
        "--work_dir",
        "--resources",
        "--launcher",
        "--recover",
    ] {
        assert!(stdout.contains(flag), "agent --help lacks {flag}");
    }
}

#[test]
fn flags_are_read_from_mesos_environment_variables() {
    let (code, _, stderr) = run(
        "mesos-master",
        &["--work_dir=/tmp/x"],
        &[("MESOS_ALLOCATION_INTERVAL", "soon")],
    );
    assert_eq!(
        code, 1,
        "the bad MESOS_ALLOCATION_INTERVAL is read: {stderr}"
    );
    assert!(stderr.contains("soon"), "{stderr}");
}

#[test]
fn master_without_credentials_refuses_to_start_and_says_what_to_pass() {
    let (code, _, stderr) = run("mesos-master", &["--registry=in_memory"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--credentials="), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
}

#[test]
fn malformed_credentials_file_is_one_startup_error_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("credentials.json");
    mesos_tests::write_private(
        &path,
        "{\"credentials\":[\n{\"principal\":\"a\",\"secret\":\"hunter2\"},\n{\"principal\":}]}",
    );
    let (code, _, stderr) = run(
        "mesos-master",
        &[
            "--registry=in_memory",
            "--port=0",
            &format!("--credentials={}", path.display()),
        ],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains(&path.display().to_string()), "{stderr}");
    assert!(last.contains("line 3"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret leaked: {stderr}");
}

#[test]
fn malformed_acls_are_one_startup_error_naming_the_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("credentials.json");
    mesos_tests::write_private(
        &credentials,
        "{\"credentials\":[{\"principal\":\"a\",\"secret\":\"b\"}]}",
    );
    for (acls, expected) in [
        (r#"{"run_task":[]}"#, "run_tasks"),
        (
            r#"{"run_tasks":[{"principals":{"type":"ANY"}}]}"#,
            "run_tasks",
        ),
        (
            r#"{"run_tasks":[{"principals":{"type":"ANY"},"roles":{"type":"ANY"}}]}"#,
            "run_tasks",
        ),
        (r#"{"run_tasks": 5"#, "--acls"),
    ] {
        let (code, _, stderr) = run(
            "mesos-master",
            &[
                "--registry=in_memory",
                "--port=0",
                &format!("--credentials={}", credentials.display()),
                &format!("--acls={acls}"),
            ],
            &[],
        );
        assert_eq!(code, 1, "{acls}: {stderr}");
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(expected), "{acls}: {stderr}");
    }
}
