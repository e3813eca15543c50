//! Errors from loading `--acls` and from building an authorizer. Each variant
//! names the input that was wrong: the action, the entry index and, when the
//! ACLs came from JSON text, the line the entry starts on.

use std::fmt;
use std::path::PathBuf;

use crate::action::UnknownAction;

/// Where in the ACLs an entry sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAt {
    /// The action's JSON key.
    pub action: &'static str,
    /// The entry's 0-based index in the action's array.
    pub index: usize,
    /// The 1-based JSON line the entry starts on, when known.
    pub line: Option<usize>,
}

impl fmt::Display for EntryAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" entry #{}", self.action, self.index)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Everything that can be wrong with an `--acls` value.
#[derive(Debug, thiserror::Error)]
pub enum AclsError {
    /// The `--acls` file could not be read.
    #[error("reading ACLs file {path}: {source}")]
    Io {
        /// The path from the flag.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("ACLs are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("ACLs must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A top-level key names no action.
    #[error("{unknown}{}", at_line(line))]
    UnknownAction {
        /// The unknown key and a suggestion.
        unknown: UnknownAction,
        /// Line of the key, when known.
        line: Option<usize>,
    },
    /// A top-level key appears twice (serde would silently keep one).
    #[error("ACL action '{action}' appears more than once{}", at_line(line))]
    DuplicateAction {
        /// The repeated key.
        action: String,
        /// Line of the second occurrence, when known.
        line: Option<usize>,
    },
    /// `permissive` is not a boolean.
    #[error("\"permissive\" must be a boolean, found {found}")]
    Permissive {
        /// The JSON type found.
        found: &'static str,
    },
    /// An action's value is not an array.
    #[error("\"{action}\" must be an array of ACL entries, found {found}")]
    NotAnArray {
        /// The action's key.
        action: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// An entry is not a JSON object.
    #[error("{at}: an ACL entry must be a JSON object, found {found}")]
    EntryNotObject {
        /// The entry.
        at: EntryAt,
        /// The JSON type found.
        found: &'static str,
    },
    /// An entry has no `principals`.
    #[error("{at}: missing \"principals\"")]
    MissingPrincipals {
        /// The entry.
        at: EntryAt,
    },
    /// An entry has no object entity.
    #[error("{at}: missing \"{expected}\"")]
    MissingObject {
        /// The entry.
        at: EntryAt,
        /// The object key this action uses.
        expected: &'static str,
    },
    /// An entry carries the object key of a different action.
    #[error("{at}: \"{key}\" is not an object of \"{}\" (it takes \"{expected}\")", at.action)]
    ForeignObjectKey {
        /// The entry.
        at: EntryAt,
        /// The key found.
        key: String,
        /// The object key this action uses.
        expected: &'static str,
    },
    /// An entry has a key that is neither `principals` nor any object key.
    #[error("{at}: unknown field \"{key}\" (expected \"principals\" and \"{expected}\")")]
    UnknownEntryField {
        /// The entry.
        at: EntryAt,
        /// The key found.
        key: String,
        /// The object key this action uses.
        expected: &'static str,
    },
    /// An entity (`principals` or the object) is malformed.
    #[error("{at}: \"{field}\": {problem}")]
    Entity {
        /// The entry.
        at: EntryAt,
        /// `principals` or the object key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Mesos's `LocalAuthorizer::validate` rejects a `SOME` object here.
    #[error("{at}: \"{field}\" type must be either NONE or ANY")]
    ObjectMustBeAnyOrNone {
        /// The entry.
        at: EntryAt,
        /// The object key.
        field: &'static str,
    },
    /// Mesos's `LocalAuthorizer::validate` rejects this `get_endpoints` path.
    #[error("{at}: path '{path}' is not an authorizable path")]
    NotAuthorizablePath {
        /// The entry.
        at: EntryAt,
        /// The path given.
        path: String,
    },
    /// casbin refused the model or the policy (a bug here, not operator input).
    #[error("building the casbin enforcer: {0}")]
    Casbin(String),
}
