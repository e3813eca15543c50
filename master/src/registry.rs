//! The master's durable registry: the leading master's identity, the
//! admitted agents, and each agent's dynamic reservations and persistent
//! volumes.
//!
//! Identity and admissions are flushed before their call returns. Resource
//! changes are *staged* ([`Registry::stage_resources`]) and made durable
//! together by [`Registry::sync`]: the master stages every mutation of a
//! batch of requests, syncs once, and only then acknowledges any of them
//! (group commit). Each staged record is one atomic write, so a crash
//! leaves a mutation either wholly present or absent.
//!
//! Backends sit behind [`Registry`]; sled is the default, in-memory is for
//! experiments.

use std::collections::BTreeMap;
use std::path::Path;

use mesos_proto::internal::registry::{AdmittedAgent, AgentResources, MasterIdentity};
use mesos_proto::v1::{AgentInfo, Resource};
use prost::Message;

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The storage engine failed.
    #[error("registry storage error: {0}")]
    Storage(String),
    /// A stored record does not decode.
    #[error("registry record '{key}' is corrupt: {reason}")]
    Corrupt {
        /// Key of the record.
        key: String,
        /// Decoder's complaint.
        reason: String,
    },
}

impl From<sled::Error> for RegistryError {
    fn from(e: sled::Error) -> Self {
        RegistryError::Storage(e.to_string())
    }
}

/// What a recovering master learns from the registry.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// The previous leader's identity, if any.
    pub previous_master: Option<String>,
    /// Agents admitted before, by id.
    pub agents: BTreeMap<String, AdmittedAgent>,
    /// Dynamic reservations and volumes by agent id. May name agents that
    /// are no longer admitted (their volumes outlive them until an operator
    /// destroys them).
    pub resources: BTreeMap<String, Vec<Resource>>,
}

/// The registry operations the master depends on.
pub trait Registry: Send + 'static {
    /// Reads everything stored.
    fn recover(&mut self) -> Result<Recovered, RegistryError>;
    /// Records the leading master's id (durable on return).
    fn set_master(&mut self, id: &str) -> Result<(), RegistryError>;
    /// Admits (or updates) an agent (durable on return).
    fn admit_agent(&mut self, info: &AgentInfo, registered_time: f64) -> Result<(), RegistryError>;
    /// Forgets an agent (durable on return).
    fn remove_agent(&mut self, agent_id: &str) -> Result<(), RegistryError>;
    /// Replaces an agent's dynamic reservations and volumes (an empty list
    /// removes the record). Durable only after the next [`Registry::sync`].
    fn stage_resources(
        &mut self,
        agent_id: &str,
        resources: &[Resource],
    ) -> Result<(), RegistryError>;
    /// Makes everything staged so far durable.
    fn sync(&mut self) -> Result<(), RegistryError>;
    /// Whether what it holds survives a restart. Only a durable registry
    /// overrules what agents report about their reservations and volumes;
    /// a forgetful one adopts their reports.
    fn is_durable(&self) -> bool {
        true
    }
}

/// sled-backed registry under `<work_dir>/registry`.
pub struct SledRegistry {
    db: sled::Db,
    agents: sled::Tree,
    resources: sled::Tree,
}

const MASTER_KEY: &[u8] = b"master";

impl SledRegistry {
    /// Opens (or creates) the registry in `work_dir`.
    pub fn open(work_dir: &Path) -> Result<Self, RegistryError> {
        let config = sled::Config::new()
            .path(work_dir.join("registry"))
            .mode(sled::Mode::HighThroughput)
            // Every write is flushed before it returns, so the background
            // flusher adds nothing; without it no thread outlives the
            // registry holding the database's file lock.
            .flush_every_ms(None);
        // A registry dropped a moment ago (a restart in the same process,
        // or a previous master still exiting) may hold the file lock
        // briefly: wait up to 2 s for it rather than fail.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if is_lock_contention(&e) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let agents = db.open_tree("agents")?;
        let resources = db.open_tree("resources")?;
        Ok(Self {
            db,
            agents,
            resources,
        })
    }
}

/// sled reports a held file lock as an `Other` error whose text carries
/// the OS's `WouldBlock`.
fn is_lock_contention(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

impl Registry for SledRegistry {
    fn recover(&mut self) -> Result<Recovered, RegistryError> {
        let previous_master = match self.db.get(MASTER_KEY)? {
            Some(bytes) => Some(
                MasterIdentity::decode(bytes.as_ref())
                    .map_err(|e| RegistryError::Corrupt {
                        key: "master".into(),
                        reason: e.to_string(),
                    })?
                    .id,
            ),
            None => None,
        };
        let mut agents = BTreeMap::new();
        for entry in self.agents.iter() {
            let (key, value) = entry?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let agent =
                AdmittedAgent::decode(value.as_ref()).map_err(|e| RegistryError::Corrupt {
                    key: format!("agents/{key}"),
                    reason: e.to_string(),
                })?;
            agents.insert(key, agent);
        }
        let mut resources = BTreeMap::new();
        for entry in self.resources.iter() {
            let (key, value) = entry?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let record =
                AgentResources::decode(value.as_ref()).map_err(|e| RegistryError::Corrupt {
                    key: format!("resources/{key}"),
                    reason: e.to_string(),
                })?;
            resources.insert(key, record.resources);
        }
        Ok(Recovered {
            previous_master,
            agents,
            resources,
        })
    }

    fn set_master(&mut self, id: &str) -> Result<(), RegistryError> {
        let record = MasterIdentity { id: id.to_string() };
        self.db.insert(MASTER_KEY, record.encode_to_vec())?;
        self.db.flush()?;
        Ok(())
    }

    fn admit_agent(&mut self, info: &AgentInfo, registered_time: f64) -> Result<(), RegistryError> {
        let id = info
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        let record = AdmittedAgent {
            info: info.clone(),
            registered_time: Some(registered_time),
        };
        self.agents.insert(id.as_bytes(), record.encode_to_vec())?;
        self.agents.flush()?;
        Ok(())
    }

    fn remove_agent(&mut self, agent_id: &str) -> Result<(), RegistryError> {
        self.agents.remove(agent_id.as_bytes())?;
        self.agents.flush()?;
        Ok(())
    }

    fn stage_resources(
        &mut self,
        agent_id: &str,
        resources: &[Resource],
    ) -> Result<(), RegistryError> {
        if resources.is_empty() {
            self.resources.remove(agent_id.as_bytes())?;
        } else {
            let record = AgentResources {
                resources: resources.to_vec(),
            };
            self.resources
                .insert(agent_id.as_bytes(), record.encode_to_vec())?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RegistryError> {
        // One flush of the log covers every tree.
        self.db.flush()?;
        Ok(())
    }
}

/// A registry that forgets everything on restart.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    state: Recovered,
}

impl Registry for InMemoryRegistry {
    fn recover(&mut self) -> Result<Recovered, RegistryError> {
        Ok(self.state.clone())
    }

    fn set_master(&mut self, id: &str) -> Result<(), RegistryError> {
        self.state.previous_master = Some(id.to_string());
        Ok(())
    }

    fn admit_agent(&mut self, info: &AgentInfo, registered_time: f64) -> Result<(), RegistryError> {
        let id = info
            .id
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        self.state.agents.insert(
            id,
            AdmittedAgent {
                info: info.clone(),
                registered_time: Some(registered_time),
            },
        );
        Ok(())
    }

    fn remove_agent(&mut self, agent_id: &str) -> Result<(), RegistryError> {
        self.state.agents.remove(agent_id);
        Ok(())
    }

    fn stage_resources(
        &mut self,
        agent_id: &str,
        resources: &[Resource],
    ) -> Result<(), RegistryError> {
        if resources.is_empty() {
            self.state.resources.remove(agent_id);
        } else {
            self.state
                .resources
                .insert(agent_id.to_string(), resources.to_vec());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RegistryError> {
        Ok(())
    }

    fn is_durable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::AgentId;

    fn agent(id: &str) -> AgentInfo {
        AgentInfo {
            hostname: "h".into(),
            id: Some(AgentId { value: id.into() }),
            ..Default::default()
        }
    }

    #[test]
    fn sled_registry_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut r = SledRegistry::open(dir.path()).expect("open");
            r.set_master("m1").expect("write");
            r.admit_agent(&agent("a1"), 1.0).expect("write");
            r.admit_agent(&agent("a2"), 2.0).expect("write");
            r.remove_agent("a1").expect("write");
        }
        let mut r = SledRegistry::open(dir.path()).expect("reopen");
        let recovered = r.recover().expect("recover");
        assert_eq!(recovered.previous_master.as_deref(), Some("m1"));
        assert_eq!(recovered.agents.keys().collect::<Vec<_>>(), vec!["a2"]);
        assert_eq!(recovered.agents["a2"].registered_time, Some(2.0));
    }

    #[test]
    fn staged_resources_survive_reopen_after_sync_and_empty_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Resource {
            name: "disk".into(),
            r#type: mesos_proto::v1::value::Type::Scalar as i32,
            scalar: Some(mesos_proto::v1::value::Scalar { value: 64.0 }),
            ..Default::default()
        };
        {
            let mut r = SledRegistry::open(dir.path()).expect("open");
            r.stage_resources("a1", std::slice::from_ref(&disk))
                .expect("stage");
            r.stage_resources("a2", std::slice::from_ref(&disk))
                .expect("stage");
            r.stage_resources("a2", &[]).expect("stage");
            r.sync().expect("sync");
        }
        let mut r = SledRegistry::open(dir.path()).expect("reopen");
        let recovered = r.recover().expect("recover");
        assert_eq!(recovered.resources.keys().collect::<Vec<_>>(), vec!["a1"]);
        assert_eq!(recovered.resources["a1"], vec![disk]);
    }

    #[test]
    fn corrupt_record_is_reported_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = SledRegistry::open(dir.path()).expect("open");
            r.agents
                .insert(b"bad", &b"\xff\xff\xff"[..])
                .expect("insert");
            r.agents.flush().expect("flush");
        }
        let mut r = SledRegistry::open(dir.path()).expect("reopen");
        let err = r.recover().expect_err("corrupt");
        assert!(err.to_string().contains("agents/bad"), "{err}");
    }
}
