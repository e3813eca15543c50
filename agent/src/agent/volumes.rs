//! The agent's dynamic reservations and persistent volumes.
//!
//! The master sends the agent's whole set in a `CheckpointResourcesMessage`
//! after every change (and after a re-registration that disagreed with its
//! registry). The agent checkpoints it atomically under
//! `meta/slaves/<agent_id>/resources.info`, creates the directory of each
//! new volume under `<work_dir>/volumes/roles/<role>/<persistence_id>`,
//! and removes the directory of each volume the set no longer holds (the
//! master only drops a volume by DESTROY, once no task uses it).
//!
//! A volume whose directory is missing on disk (after recovery, or when it
//! is used) is reported and never silently recreated empty: tasks that use
//! it fail with a message naming the path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mesos_common::conversions;
use mesos_common::resources::{reservation_role, Resources};
use mesos_proto::internal as m;
use mesos_proto::v1::{self, Resource};

use super::Agent;
use crate::checkpoint;

/// `(role, persistence id)` of a volume.
pub(crate) fn volume_key(r: &Resource) -> Option<(String, String)> {
    let id = r.disk.as_ref()?.persistence.as_ref()?.id.clone();
    Some((reservation_role(r)?.to_string(), id))
}

/// `<work_dir>/volumes/roles/<role>/<id>`, the role as one path component:
/// the `/` of a hierarchical role becomes a space (as in Mesos), so the
/// volumes of `dev/x` never sit inside volume `x` of role `dev`.
pub(crate) fn volume_path(work_dir: &Path, role: &str, id: &str) -> PathBuf {
    work_dir
        .join("volumes")
        .join("roles")
        .join(role.replace('/', " "))
        .join(id)
}

/// A persistence id usable as one path component (the master checks the
/// same; the agent does not take a path from the network on trust).
fn safe_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\0'])
}

/// A `container_path` inside the sandbox: relative, no empty, `.` or `..`
/// component.
fn safe_container_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// The first volume of `resources` whose persistence id is not a safe
/// path component.
fn unsafe_volume(resources: &Resources) -> Option<String> {
    resources
        .iter()
        .filter_map(volume_key)
        .find(|(_, id)| !safe_id(id))
        .map(|(_, id)| id)
}

impl Agent {
    /// `<work_dir>/volumes/roles/<role>/<persistence_id>` of a volume.
    pub(crate) fn volume_dir(&self, volume: &Resource) -> Option<PathBuf> {
        let (role, id) = volume_key(volume)?;
        Some(volume_path(self.layout.work_dir(), &role, &id))
    }

    fn resources_checkpoint(&self, agent_id: &str) -> PathBuf {
        self.layout.agent_meta(agent_id).join("resources.info")
    }

    /// The total this agent offers: its `--resources` with the
    /// checkpointed reservations and volumes applied.
    pub(crate) fn total_resources(&self) -> Resources {
        let statics = Resources::new(self.info.resources.clone()).unwrap_or_default();
        conversions::apply_checkpointed(&statics, &self.checkpointed).unwrap_or(statics)
    }

    /// Reads the checkpointed set after a restart and reports volumes
    /// whose directory is gone.
    pub(crate) fn recover_resources(&mut self, agent_id: &str) -> anyhow::Result<()> {
        let path = self.resources_checkpoint(agent_id);
        let Some(message): Option<m::CheckpointResourcesMessage> = checkpoint::read_message(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        else {
            return Ok(());
        };
        let resources = Resources::new(message.resources)
            .map_err(|e| anyhow::anyhow!("{} holds invalid resources: {e}", path.display()))?;
        if let Some(id) = unsafe_volume(&resources) {
            anyhow::bail!(
                "{} holds a volume with the unusable id {id:?}",
                path.display()
            );
        }
        let statics = Resources::new(self.info.resources.clone()).unwrap_or_default();
        if let Err(e) = conversions::apply_checkpointed(&statics, &resources) {
            anyhow::bail!(
                "the checkpointed reservations and volumes in {} do not fit this agent's --resources ({e}); \
                 restart the agent with --resources that hold them",
                path.display()
            );
        }
        self.checkpointed = resources;
        self.check_volume_dirs();
        Ok(())
    }

    /// Records (and logs) every checkpointed volume whose directory is
    /// missing.
    fn check_volume_dirs(&mut self) {
        let mut missing = BTreeSet::new();
        for r in self.checkpointed.iter() {
            if let Some(dir) = self.volume_dir(r) {
                if !dir.is_dir() {
                    tracing::error!(volume = %dir.display(),
                        "persistent volume directory is missing; tasks using the volume will fail until it is restored or the volume is destroyed");
                    missing.insert(dir);
                }
            }
        }
        self.missing_volumes = missing;
    }

    /// `CheckpointResourcesMessage`: the master's new set for this agent.
    pub(crate) fn checkpoint_resources(&mut self, message: m::CheckpointResourcesMessage) {
        let Some(agent_id) = self.agent_id() else {
            tracing::warn!("ignoring CheckpointResourcesMessage before registration");
            return;
        };
        let new = match Resources::new(message.resources) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("ignoring CheckpointResourcesMessage with invalid resources: {e}");
                return;
            }
        };
        if let Some(id) = unsafe_volume(&new) {
            tracing::error!(
                "ignoring CheckpointResourcesMessage with a volume whose id {id:?} is not a safe directory name"
            );
            return;
        }
        if let Some(bad) = new.iter().find(|r| !conversions::is_checkpointed(r)) {
            tracing::error!(resource = %mesos_common::resources::ResourceText(bad),
                "ignoring CheckpointResourcesMessage holding a resource that is neither dynamically reserved nor a volume");
            return;
        }
        let statics = Resources::new(self.info.resources.clone()).unwrap_or_default();
        if let Err(e) = conversions::apply_checkpointed(&statics, &new) {
            tracing::error!(
                "ignoring CheckpointResourcesMessage that does not fit --resources: {e}"
            );
            return;
        }
        let old_keys: BTreeSet<_> = self.checkpointed.iter().filter_map(volume_key).collect();
        let new_keys: BTreeSet<_> = new.iter().filter_map(volume_key).collect();
        // Directories first, then the checkpoint: a crash in between leaves
        // an empty directory, which the next message finds and keeps.
        for (role, id) in new_keys.difference(&old_keys) {
            let dir = volume_path(self.layout.work_dir(), role, id);
            // A directory left by an earlier volume of that role and id
            // (destroyed while this agent was away, or from a wiped agent)
            // is not handed to the new one: it is set aside.
            let leftover = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
            if leftover {
                let stale = self
                    .layout
                    .work_dir()
                    .join("volumes")
                    .join("stale")
                    .join(format!(
                        "{}-{id}-{}",
                        role.replace('/', " "),
                        uuid::Uuid::new_v4().simple()
                    ));
                let moved = stale
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::rename(&dir, &stale));
                match moved {
                    Ok(()) => tracing::warn!(volume = %dir.display(), moved_to = %stale.display(),
                        "a new volume's directory held data from an earlier one; set it aside"),
                    Err(e) => {
                        tracing::error!(volume = %dir.display(), "cannot set aside an earlier volume's data, not creating the volume: {e}");
                        continue;
                    }
                }
            }
            match std::fs::create_dir_all(&dir) {
                Ok(()) => tracing::info!(volume = %dir.display(), "created persistent volume"),
                Err(e) => {
                    tracing::error!(volume = %dir.display(), "cannot create persistent volume: {e}")
                }
            }
        }
        let path = self.resources_checkpoint(&agent_id);
        let record = m::CheckpointResourcesMessage {
            resources: new.clone().into_vec(),
        };
        if let Err(e) = checkpoint::write_message(&path, &record) {
            super::fatal_checkpoint(&path, &e);
        }
        for (role, id) in old_keys.difference(&new_keys) {
            let dir = volume_path(self.layout.work_dir(), role, id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(volume = %dir.display(), "destroyed persistent volume"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(volume = %dir.display(), "cannot remove destroyed persistent volume: {e}")
                }
            }
        }
        tracing::info!(resources = %new, "checkpointed reservations and volumes");
        self.checkpointed = new;
        self.check_volume_dirs();
        self.resources_json = mesos_common::resources::to_state_json(&self.total_resources());
    }

    /// Makes the volumes among `resources` appear in `sandbox` at their
    /// `container_path`, owned by `owner` when given. With `bind` (the
    /// linux launcher) the returned mounts bind each volume's directory
    /// there in the container's own mount namespace, read-only where the
    /// volume's mode says so; otherwise the path is a symlink to the
    /// directory (Mesos's `filesystem/posix`) and nothing is returned.
    pub(crate) fn attach_volumes(
        &self,
        resources: &[Resource],
        sandbox: &Path,
        owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
        bind: bool,
    ) -> Result<Vec<crate::sys::BindMount>, String> {
        let mut mounts = Vec::new();
        // No volume may sit inside another's container path: the path to
        // it would run through what tasks wrote into the outer one.
        let paths: Vec<&str> = resources
            .iter()
            .filter(|r| conversions::is_persistent_volume(r))
            .filter_map(|r| r.disk.as_ref()?.volume.as_ref())
            .map(|v| v.container_path.trim_end_matches('/'))
            .collect();
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                let nested = |x: &str, y: &str| {
                    x == y || y.strip_prefix(x).is_some_and(|rest| rest.starts_with('/'))
                };
                if nested(a, b) || nested(b, a) {
                    return Err(format!(
                        "Persistent volumes at container paths '{a}' and '{b}' overlap; each needs a path of its own"
                    ));
                }
            }
        }
        for r in resources
            .iter()
            .filter(|r| conversions::is_persistent_volume(r))
        {
            let Some(dir) = self.volume_dir(r) else {
                continue;
            };
            let id = volume_key(r).map(|k| k.1).unwrap_or_default();
            let known = self
                .checkpointed
                .iter()
                .any(|c| volume_key(c).as_ref() == volume_key(r).as_ref());
            if !known {
                return Err(format!(
                    "Persistent volume '{id}' is not checkpointed on this agent"
                ));
            }
            if !dir.is_dir() {
                return Err(format!(
                    "Persistent volume '{id}' is missing its directory {} on this agent; it is not recreated empty: restore it, or destroy the volume",
                    dir.display()
                ));
            }
            let container_path = r
                .disk
                .as_ref()
                .and_then(|d| d.volume.as_ref())
                .map(|v| v.container_path.clone())
                .unwrap_or_default();
            let container_path = container_path.trim_end_matches('/').to_string();
            if !safe_container_path(&container_path) {
                return Err(format!(
                    "Persistent volume '{id}' has container_path '{container_path}', which is not a relative path inside the sandbox"
                ));
            }
            if let Some((uid, gid)) = owner {
                // Never through a link: the directory itself.
                std::os::unix::fs::lchown(&dir, Some(uid.as_raw()), Some(gid.as_raw())).map_err(
                    |e| format!("Failed to chown persistent volume {}: {e}", dir.display()),
                )?;
            }
            let link = sandbox.join(&container_path);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    format!(
                        "Failed to create {} for volume '{id}': {e}",
                        parent.display()
                    )
                })?;
            }
            if bind {
                let read_only = r
                    .disk
                    .as_ref()
                    .and_then(|d| d.volume.as_ref())
                    .is_some_and(|v| v.mode == v1::volume::Mode::Ro as i32);
                std::fs::create_dir_all(&link).map_err(|e| {
                    format!(
                        "Failed to create the mount point {} of volume '{id}': {e}",
                        link.display()
                    )
                })?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(&link, Some(uid.as_raw()), Some(gid.as_raw()))
                        .map_err(|e| format!("Failed to chown {}: {e}", link.display()))?;
                }
                mounts.push(crate::sys::BindMount {
                    source: dir,
                    target: link,
                    read_only,
                });
                continue;
            }
            match std::fs::symlink_metadata(&link) {
                Ok(_) => {
                    // A recovered or repeated launch in the same sandbox.
                    if std::fs::read_link(&link).ok().as_deref() != Some(dir.as_path()) {
                        return Err(format!(
                            "Cannot mount persistent volume '{id}' at {}: the path exists in the sandbox",
                            link.display()
                        ));
                    }
                }
                Err(_) => std::os::unix::fs::symlink(&dir, &link).map_err(|e| {
                    format!(
                        "Failed to link persistent volume '{id}' into the sandbox at {}: {e}",
                        link.display()
                    )
                })?,
            }
        }
        Ok(mounts)
    }
}

/// The resources an executor's container holds: its own and its tasks'.
pub(crate) fn container_resources(executor: &super::Executor) -> Vec<v1::Resource> {
    let mut out = executor.info.resources.clone();
    for task in executor.tasks.values() {
        if let Some(info) = &task.info {
            out.extend(info.resources.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchical_roles_never_nest_volume_directories() {
        let root = Path::new("/w");
        let outer = volume_path(root, "dev", "x");
        let inner = volume_path(root, "dev/x", "y");
        assert_eq!(inner, Path::new("/w/volumes/roles/dev x/y"));
        assert!(
            !inner.starts_with(&outer),
            "{} inside {}",
            inner.display(),
            outer.display()
        );
    }

    #[test]
    fn ids_and_container_paths_that_leave_their_directory_are_refused() {
        for id in ["", ".", "..", "a/b", "/etc", "a\0b"] {
            assert!(!safe_id(id), "{id:?}");
        }
        assert!(safe_id("pv-1"));
        for path in ["", ".", "/data", "a/../b", "a//b", "./a", "a/."] {
            assert!(!safe_container_path(path), "{path:?}");
        }
        assert!(safe_container_path("data/inner"));
    }
}
