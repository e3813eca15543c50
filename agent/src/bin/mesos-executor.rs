//! `mesos-executor`: the built-in command executor (and, for task groups,
//! the default executor). Everything it needs comes from the environment the
//! agent set (`MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`,
//! `MESOS_AGENT_ENDPOINT`, ...); flags such as `--launcher_dir` are accepted
//! and ignored.

fn main() {
    mesos_common::init_logging("info");
    let env = match mesos_agent::executor::ExecutorEnv::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            std::process::exit(1);
        }
    };
    match mesos_common::tls::Tls::from_env() {
        Ok(Some(tls)) => mesos_agent::executor::client::use_tls(tls),
        Ok(None) => {}
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            std::process::exit(1);
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mesos-executor: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(mesos_agent::executor::run(env));
    std::process::exit(code);
}
