//! `mesos-master`.

use mesos_master::flags::Flags;

fn main() {
    let mut flags: Flags = mesos_common::flags::parse_or_exit();
    if let Err(e) = flags.validate() {
        mesos_common::flags::fail(e);
    }
    mesos_common::init_logging("info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Failed to start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(mesos_master::run::run(flags)) {
        eprintln!("mesos-master: {e:#}");
        std::process::exit(1);
    }
}
