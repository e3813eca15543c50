//! Exit statuses of executors: reaps our children as soon as they exit (so none
//! lingers as a zombie, whether or not anyone waits) and watches recovered,
//! non-child executors until they are gone. It does not kill anything.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use tokio::sync::watch;

use crate::sys::{KillTarget, Signal, Syscalls};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Running,
    /// Reaped; `None` when waitpid failed (someone else reaped it).
    Exited(Option<i32>),
}

struct Child {
    pid: u32,
    exit: watch::Receiver<Exit>,
}

/// How often a recovered executor is checked when pidfds are unavailable.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub(crate) struct Reaper {
    sys: Arc<dyn Syscalls>,
    children: Mutex<HashMap<String, Child>>,
}

impl Reaper {
    pub(crate) fn new(sys: Arc<dyn Syscalls>) -> Self {
        Self {
            sys,
            children: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Child>> {
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts reaping our child `pid` of `container_id` in the background. On
    /// failure the child has been killed and reaped, and the error is returned.
    pub(crate) fn adopt_child(&self, container_id: &str, pid: u32) -> io::Result<()> {
        let (tx, rx) = watch::channel(Exit::Running);
        let sys = Arc::clone(&self.sys);
        // A blocking waitpid per executor: executors are few, the thread is
        // small, and it needs no async runtime at launch time.
        let spawned = std::thread::Builder::new()
            .name(format!("reap-{pid}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let status = match sys.wait_child(pid) {
                    Ok(status) => Some(status),
                    Err(e) => {
                        tracing::warn!(pid, error = %e, "could not reap executor");
                        None
                    }
                };
                tx.send_replace(Exit::Exited(status));
            });
        if let Err(e) = spawned {
            let _ = self.sys.kill(KillTarget::Process(pid), Signal::SIGKILL);
            let _ = self.sys.wait_child(pid);
            return Err(e);
        }
        self.lock()
            .insert(container_id.to_string(), Child { pid, exit: rx });
        Ok(())
    }

    /// Forgets the container (after destroy).
    pub(crate) fn forget(&self, container_id: &str) {
        self.lock().remove(container_id);
    }

    /// See [`super::Launcher::wait`].
    pub(crate) fn wait(&self, container_id: &str, pid: u32) -> BoxFuture<'static, Option<i32>> {
        let child = self
            .lock()
            .get(container_id)
            .filter(|c| c.pid == pid)
            .map(|c| c.exit.clone());
        if let Some(mut exit) = child {
            return async move {
                match exit.wait_for(|e| *e != Exit::Running).await {
                    Ok(e) => match *e {
                        Exit::Exited(status) => status,
                        Exit::Running => None,
                    },
                    // The reaper thread is gone without a word: nothing to report.
                    Err(_) => None,
                }
            }
            .boxed();
        }
        wait_non_child(Arc::clone(&self.sys), pid)
    }
}

/// Resolves when `pid`, which is not our child, has exited. Prefers a pidfd
/// (opened now, so a later reuse of the pid cannot fool it); falls back to
/// polling `/proc/<pid>/stat`, comparing start times for the same reason.
fn wait_non_child(sys: Arc<dyn Syscalls>, pid: u32) -> BoxFuture<'static, Option<i32>> {
    let first = match sys.process(pid) {
        Ok(Some(p)) if !p.is_exited() => p,
        // Gone already (or unreadable: nothing to wait for).
        _ => return futures::future::ready(None).boxed(),
    };
    let pidfd = sys.pidfd_open(pid);
    async move {
        if let Ok(fd) = pidfd {
            match crate::sys::readable(fd).await {
                Ok(()) => return None,
                Err(e) => tracing::debug!(pid, error = %e, "cannot poll pidfd; polling /proc"),
            }
        }
        loop {
            match sys.process(pid) {
                Ok(Some(p)) if !p.is_exited() && p.start_time == first.start_time => {}
                _ => return None,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::RecordingSyscalls;
    use crate::sys::{ProcessInfo, RealSyscalls};

    #[tokio::test]
    async fn a_child_exit_status_reaches_every_waiter_even_one_that_came_late() {
        let fake = Arc::new(RecordingSyscalls::new());
        fake.add_process(ProcessInfo {
            pid: 77,
            ppid: 1,
            pgid: 77,
            sid: 77,
            state: 'S',
            start_time: 1,
        });
        let reaper = Reaper::new(fake.clone());
        reaper.adopt_child("c1", 77).expect("reaper thread starts");
        let early = reaper.wait("c1", 77);
        fake.exit(77, 3 << 8);
        assert_eq!(early.await, Some(3 << 8));
        assert_eq!(
            reaper.wait("c1", 77).await,
            Some(3 << 8),
            "a late waiter gets it too"
        );
    }

    #[tokio::test]
    async fn a_non_child_resolves_to_none_when_it_disappears() {
        let fake = Arc::new(RecordingSyscalls::new());
        fake.add_process(ProcessInfo {
            pid: 88,
            ppid: 1,
            pgid: 88,
            sid: 88,
            state: 'S',
            start_time: 5,
        });
        let reaper = Reaper::new(fake.clone());
        let waiting = tokio::spawn(reaper.wait("c2", 88));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "still running");
        // The pid is reused by a different process: that is not our executor.
        fake.add_process(ProcessInfo {
            pid: 88,
            ppid: 1,
            pgid: 9,
            sid: 9,
            state: 'S',
            start_time: 6,
        });
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("resolves after the executor is gone")
            .expect("task joins");
        assert_eq!(got, None);
    }

    #[tokio::test]
    async fn a_real_non_child_is_watched_through_a_pidfd() {
        // Our own child, but not adopted: the reaper treats it as recovered.
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        let reaper = Reaper::new(Arc::new(RealSyscalls));
        let waiting = tokio::spawn(reaper.wait("c3", pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        child.kill().expect("kill sleep");
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("pidfd fires on exit")
            .expect("task joins");
        assert_eq!(got, None);
        let _ = child.wait();
    }
}
