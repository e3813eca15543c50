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
//! Backends sit behind [`Registry`]: redb is the default (each commit is
//! `fsync`ed, so an acknowledged change survives a power loss); sled is
//! kept for existing work dirs (its flush is `sync_file_range`: it
//! survives a crash of the master, not of the machine); in-memory is for
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

impl Recovered {
    /// Decodes the stored records; a record that does not decode is
    /// reported with its key.
    fn decode<B: AsRef<[u8]>>(
        master: Option<B>,
        agents: Vec<(String, B)>,
        resources: Vec<(String, B)>,
    ) -> Result<Self, RegistryError> {
        let previous_master = match master {
            Some(bytes) => Some(decode::<MasterIdentity>("master".into(), bytes.as_ref())?.id),
            None => None,
        };
        let mut out = Recovered {
            previous_master,
            ..Default::default()
        };
        for (key, value) in agents {
            let agent = decode(format!("agents/{key}"), value.as_ref())?;
            out.agents.insert(key, agent);
        }
        for (key, value) in resources {
            let record: AgentResources = decode(format!("resources/{key}"), value.as_ref())?;
            out.resources.insert(key, record.resources);
        }
        Ok(out)
    }
}

fn decode<M: Message + Default>(key: String, bytes: &[u8]) -> Result<M, RegistryError> {
    M::decode(bytes).map_err(|e| RegistryError::Corrupt {
        key,
        reason: e.to_string(),
    })
}

/// An agent's admission record and the id it is stored under.
fn admitted(info: &AgentInfo, registered_time: f64) -> (String, AdmittedAgent) {
    let id = info
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let record = AdmittedAgent {
        info: info.clone(),
        registered_time: Some(registered_time),
    };
    (id, record)
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
        let entries = |tree: &sled::Tree| {
            tree.iter()
                .map(|entry| {
                    let (key, value) = entry?;
                    Ok((String::from_utf8_lossy(&key).into_owned(), value))
                })
                .collect::<Result<Vec<_>, RegistryError>>()
        };
        Recovered::decode(
            self.db.get(MASTER_KEY)?,
            entries(&self.agents)?,
            entries(&self.resources)?,
        )
    }

    fn set_master(&mut self, id: &str) -> Result<(), RegistryError> {
        let record = MasterIdentity { id: id.to_string() };
        self.db.insert(MASTER_KEY, record.encode_to_vec())?;
        self.db.flush()?;
        Ok(())
    }

    fn admit_agent(&mut self, info: &AgentInfo, registered_time: f64) -> Result<(), RegistryError> {
        let (id, record) = admitted(info, registered_time);
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

/// redb-backed registry in `<work_dir>/registry.redb`.
///
/// Staged resource records wait in memory; [`Registry::sync`] writes them
/// in one transaction and commits it (one `fsync` for every change of a
/// batch). Identity and admissions commit at once, taking anything staged
/// along.
pub struct RedbRegistry {
    db: redb::Database,
    /// Staged records: `Some(bytes)` to write, `None` to remove.
    staged: BTreeMap<String, Option<Vec<u8>>>,
}

const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
/// Key in `meta` set once a sled registry was imported.
const SLED_IMPORTED: &str = "imported_sled_registry";
const AGENTS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("agents");
const RESOURCES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("resources");

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

/// One write to apply in a transaction.
enum Write<'a> {
    Master(Vec<u8>),
    Agent(&'a str, Option<Vec<u8>>),
}

impl RedbRegistry {
    /// Opens (or creates) the registry in `work_dir`. A work dir that
    /// holds only a sled registry (`<work_dir>/registry`) is imported into
    /// the new file once, so an upgrade keeps its agents and volumes.
    pub fn open(work_dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(work_dir).map_err(storage)?;
        let path = work_dir.join("registry.redb");
        // A registry dropped a moment ago (a restart in the same process,
        // or a previous master still exiting) may hold the lock briefly.
        let mut attempts = 0;
        let db = loop {
            match redb::Database::create(&path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(storage)?,
            }
        };
        let txn = db.begin_write().map_err(storage)?;
        for table in [META, AGENTS, RESOURCES] {
            txn.open_table(table).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let mut registry = Self {
            db,
            staged: BTreeMap::new(),
        };
        // Imported once: the marker is written in the import's own
        // transaction, so a crash during it imports again next time.
        let imported = {
            let txn = registry.db.begin_read().map_err(storage)?;
            let meta = txn.open_table(META).map_err(storage)?;
            meta.get(SLED_IMPORTED).map_err(storage)?.is_some()
        };
        let sled_dir = work_dir.join("registry");
        if !imported && sled_dir.is_dir() {
            let old = SledRegistry::open(work_dir)?.recover()?;
            tracing::info!(agents = old.agents.len(), volumes_agents = old.resources.len(),
                from = %sled_dir.display(), "importing the sled registry into registry.redb");
            registry.import(&old)?;
        }
        Ok(registry)
    }

    fn import(&mut self, old: &Recovered) -> Result<(), RegistryError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            if let Some(id) = &old.previous_master {
                let record = MasterIdentity { id: id.clone() }.encode_to_vec();
                meta.insert("master", record.as_slice()).map_err(storage)?;
            }
            meta.insert(SLED_IMPORTED, &b"1"[..]).map_err(storage)?;
            let mut agents = txn.open_table(AGENTS).map_err(storage)?;
            for (id, agent) in &old.agents {
                agents
                    .insert(id.as_str(), agent.encode_to_vec().as_slice())
                    .map_err(storage)?;
            }
            let mut resources = txn.open_table(RESOURCES).map_err(storage)?;
            for (id, list) in &old.resources {
                let record = AgentResources {
                    resources: list.clone(),
                };
                resources
                    .insert(id.as_str(), record.encode_to_vec().as_slice())
                    .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// Writes `writes` and everything staged in one transaction and
    /// commits it.
    fn commit(&mut self, writes: Vec<Write<'_>>) -> Result<(), RegistryError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let mut agents = txn.open_table(AGENTS).map_err(storage)?;
            for write in &writes {
                match write {
                    Write::Master(bytes) => {
                        meta.insert("master", bytes.as_slice()).map_err(storage)?;
                    }
                    Write::Agent(id, Some(bytes)) => {
                        agents.insert(*id, bytes.as_slice()).map_err(storage)?;
                    }
                    Write::Agent(id, None) => {
                        agents.remove(*id).map_err(storage)?;
                    }
                }
            }
            let mut resources = txn.open_table(RESOURCES).map_err(storage)?;
            for (id, record) in &self.staged {
                match record {
                    Some(bytes) => {
                        resources
                            .insert(id.as_str(), bytes.as_slice())
                            .map_err(storage)?;
                    }
                    None => {
                        resources.remove(id.as_str()).map_err(storage)?;
                    }
                }
            }
        }
        txn.commit().map_err(storage)?;
        self.staged.clear();
        Ok(())
    }
}

impl Registry for RedbRegistry {
    fn recover(&mut self) -> Result<Recovered, RegistryError> {
        use redb::ReadableTable;
        let txn = self.db.begin_read().map_err(storage)?;
        let master = txn
            .open_table(META)
            .map_err(storage)?
            .get("master")
            .map_err(storage)?
            .map(|bytes| bytes.value().to_vec());
        let entries = |table: redb::TableDefinition<&str, &[u8]>| -> Result<Vec<(String, Vec<u8>)>, RegistryError> {
            txn.open_table(table)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
                .map(|entry| {
                    let (key, value) = entry.map_err(storage)?;
                    Ok((key.value().to_string(), value.value().to_vec()))
                })
                .collect()
        };
        Recovered::decode(master, entries(AGENTS)?, entries(RESOURCES)?)
    }

    fn set_master(&mut self, id: &str) -> Result<(), RegistryError> {
        let record = MasterIdentity { id: id.to_string() };
        self.commit(vec![Write::Master(record.encode_to_vec())])
    }

    fn admit_agent(&mut self, info: &AgentInfo, registered_time: f64) -> Result<(), RegistryError> {
        let (id, record) = admitted(info, registered_time);
        self.commit(vec![Write::Agent(&id, Some(record.encode_to_vec()))])
    }

    fn remove_agent(&mut self, agent_id: &str) -> Result<(), RegistryError> {
        self.commit(vec![Write::Agent(agent_id, None)])
    }

    fn stage_resources(
        &mut self,
        agent_id: &str,
        resources: &[Resource],
    ) -> Result<(), RegistryError> {
        let record = (!resources.is_empty()).then(|| {
            AgentResources {
                resources: resources.to_vec(),
            }
            .encode_to_vec()
        });
        self.staged.insert(agent_id.to_string(), record);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RegistryError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        self.commit(Vec::new())
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
        let (id, record) = admitted(info, registered_time);
        self.state.agents.insert(id, record);
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
    fn redb_registry_keeps_synced_changes_forgets_unsynced_ones_and_imports_sled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Resource {
            name: "disk".into(),
            r#type: mesos_proto::v1::value::Type::Scalar as i32,
            scalar: Some(mesos_proto::v1::value::Scalar { value: 64.0 }),
            ..Default::default()
        };
        {
            // An upgrade: a work dir with only a sled registry.
            let mut old = SledRegistry::open(dir.path()).expect("sled");
            old.set_master("m0").expect("write");
            old.admit_agent(&agent("a0"), 0.5).expect("write");
            old.stage_resources("a0", std::slice::from_ref(&disk))
                .expect("stage");
            old.sync().expect("sync");
        }
        {
            let mut r = RedbRegistry::open(dir.path()).expect("open");
            let imported = r.recover().expect("recover");
            assert_eq!(imported.previous_master.as_deref(), Some("m0"));
            assert_eq!(imported.resources["a0"], vec![disk.clone()]);
            r.set_master("m1").expect("write");
            r.admit_agent(&agent("a1"), 1.0).expect("write");
            r.stage_resources("a1", std::slice::from_ref(&disk))
                .expect("stage");
            r.stage_resources("a0", &[]).expect("stage");
            r.sync().expect("sync");
            r.stage_resources("never-synced", std::slice::from_ref(&disk))
                .expect("stage");
        }
        let mut r = RedbRegistry::open(dir.path()).expect("reopen");
        let recovered = r.recover().expect("recover");
        assert_eq!(recovered.previous_master.as_deref(), Some("m1"));
        assert_eq!(
            recovered.agents.keys().collect::<Vec<_>>(),
            vec!["a0", "a1"]
        );
        assert_eq!(
            recovered.resources.keys().collect::<Vec<_>>(),
            vec!["a1"],
            "a0's record was removed, the unsynced one never written"
        );
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
