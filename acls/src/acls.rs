//! The Mesos `--acls` JSON schema: parsing it strictly (every mistake names
//! its entry), the in-memory `Acls`, and the shadowed-entry warnings. It does
//! not evaluate requests; see `eval` and `casbin`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

use crate::action::{Action, ObjectKind, AUTHORIZABLE_ENDPOINTS};
use crate::error::{AclsError, EntryAt};

/// The type of an ACL entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// The listed values (the default when `type` is absent).
    Some,
    /// Anything.
    Any,
    /// Nothing: matches every request, allows none.
    None,
}

impl EntityType {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Some => "SOME",
            EntityType::Any => "ANY",
            EntityType::None => "NONE",
        }
    }
}

/// `{"type": ..., "values": [...]}`. Mesos ignores `values` for `ANY`/`NONE`;
/// the parser drops them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entity {
    /// The entity type.
    pub kind: EntityType,
    /// The values (meaningful for `SOME` only).
    pub values: Vec<String>,
}

impl Entity {
    /// `ANY`.
    pub fn any() -> Self {
        Entity {
            kind: EntityType::Any,
            values: Vec::new(),
        }
    }

    /// `NONE`.
    pub fn none() -> Self {
        Entity {
            kind: EntityType::None,
            values: Vec::new(),
        }
    }

    /// `SOME` with these values.
    pub fn some<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Entity {
            kind: EntityType::Some,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The entity as Mesos JSON.
    pub fn to_json(&self) -> Value {
        match self.kind {
            EntityType::Some => serde_json::json!({ "values": self.values }),
            other => serde_json::json!({ "type": other.as_str() }),
        }
    }
}

/// One ACL entry: who (`principals`) may do the action to what (the object).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    /// The subject entity.
    pub principals: Entity,
    /// The object entity (stored under the action's object key in JSON).
    pub object: Entity,
}

/// A parsed `--acls` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    /// What happens when no entry matches (Mesos's default: `true`).
    pub permissive: bool,
    entries: BTreeMap<Action, Vec<Acl>>,
}

impl Default for Acls {
    fn default() -> Self {
        Acls {
            permissive: true,
            entries: BTreeMap::new(),
        }
    }
}

/// The result of parsing: the ACLs and warnings for the operator's log.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The ACLs.
    pub acls: Acls,
    /// Entries that can never decide anything (see [`Acls::warnings`]).
    pub warnings: Vec<String>,
}

impl Acls {
    /// Empty ACLs with the given `permissive`.
    pub fn new(permissive: bool) -> Self {
        Acls {
            permissive,
            entries: BTreeMap::new(),
        }
    }

    /// The entries of one action, in evaluation order.
    pub fn entries(&self, action: Action) -> &[Acl] {
        self.entries.get(&action).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every action that has at least one entry, with its entries.
    pub fn iter(&self) -> impl Iterator<Item = (Action, &[Acl])> {
        self.entries.iter().map(|(a, v)| (*a, v.as_slice()))
    }

    /// Total number of entries across actions.
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    /// Whether there are no entries at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends an entry to an action's list (programmatic construction; the
    /// Mesos validation rules are applied by [`Acls::validate`]).
    pub fn push(&mut self, action: Action, acl: Acl) {
        self.entries.entry(action).or_default().push(acl);
    }

    /// Parses the `--acls` flag value: inline JSON, a path, or `file:///path`.
    pub fn from_flag(value: &str) -> Result<Parsed, AclsError> {
        let trimmed = value.trim_start();
        if trimmed.starts_with('{') {
            return Acls::parse(value);
        }
        let path = value.strip_prefix("file://").unwrap_or(value);
        Acls::from_file(Path::new(path))
    }

    /// Reads and parses an ACLs file.
    pub fn from_file(path: &Path) -> Result<Parsed, AclsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Acls::parse(&text)
    }

    /// Parses Mesos ACL JSON text strictly and validates it as Mesos's
    /// `LocalAuthorizer::validate` does.
    pub fn parse(text: &str) -> Result<Parsed, AclsError> {
        let value: Value = serde_json::from_str(text)?;
        let Value::Object(top) = value else {
            return Err(AclsError::NotAnObject {
                found: json_type(&value),
            });
        };
        let layout = scan_layout(text);
        if let Some((action, line)) = layout.duplicate {
            return Err(AclsError::DuplicateAction {
                action,
                line: Some(line),
            });
        }
        let mut acls = Acls::default();
        for (key, value) in &top {
            if key == "permissive" {
                acls.permissive = value.as_bool().ok_or(AclsError::Permissive {
                    found: json_type(value),
                })?;
                continue;
            }
            let action: Action = key.parse().map_err(|unknown| AclsError::UnknownAction {
                unknown,
                line: layout.keys.get(key).map(|k| k.0),
            })?;
            let Value::Array(items) = value else {
                return Err(AclsError::NotAnArray {
                    action: action.as_str(),
                    found: json_type(value),
                });
            };
            let lines = layout.keys.get(key).map(|k| k.1.as_slice()).unwrap_or(&[]);
            for (index, item) in items.iter().enumerate() {
                let at = EntryAt {
                    action: action.as_str(),
                    index,
                    line: lines.get(index).copied(),
                };
                let acl = parse_entry(action, item, &at)?;
                validate_entry(action, &acl, &at)?;
                acls.push(action, acl);
            }
        }
        let warnings = acls.warnings();
        Ok(Parsed { acls, warnings })
    }

    /// Applies Mesos's validation rules to programmatically built ACLs.
    pub fn validate(&self) -> Result<(), AclsError> {
        for (action, entries) in self.iter() {
            for (index, acl) in entries.iter().enumerate() {
                let at = EntryAt {
                    action: action.as_str(),
                    index,
                    line: None,
                };
                validate_entry(action, acl, &at)?;
            }
        }
        Ok(())
    }

    /// Entries that can never decide a request: a `SOME` entity with no
    /// values (it matches nothing, as in Mesos), or an entry whose every
    /// matching request is already matched by one earlier entry of the same
    /// action (shadowed). Only single-entry shadowing is detected.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (action, entries) in self.iter() {
            for (j, acl) in entries.iter().enumerate() {
                let empty = [
                    ("principals", &acl.principals),
                    (action.object_key(), &acl.object),
                ]
                .into_iter()
                .find(|(_, e)| e.kind == EntityType::Some && e.values.is_empty());
                if let Some((field, _)) = empty {
                    out.push(format!(
                        "\"{action}\" entry #{j}: \"{field}\" is SOME with no values, so the entry never matches"
                    ));
                    continue;
                }
                let hierarchical = action.object_kind() == ObjectKind::Role;
                if let Some(i) = entries[..j].iter().position(|earlier| {
                    covers(&earlier.principals, &acl.principals, false)
                        && covers(&earlier.object, &acl.object, hierarchical)
                }) {
                    out.push(format!(
                        "\"{action}\" entry #{j} is shadowed by entry #{i}: every request it matches is decided by #{i} first"
                    ));
                }
            }
        }
        out
    }

    /// The ACLs as Mesos JSON.
    pub fn to_json(&self) -> Value {
        let mut top = Map::new();
        top.insert("permissive".into(), Value::Bool(self.permissive));
        for (action, entries) in self.iter() {
            let list = entries
                .iter()
                .map(|acl| {
                    let mut entry = Map::new();
                    entry.insert("principals".into(), acl.principals.to_json());
                    entry.insert(action.object_key().into(), acl.object.to_json());
                    Value::Object(entry)
                })
                .collect();
            top.insert(action.as_str().into(), Value::Array(list));
        }
        Value::Object(top)
    }
}

/// Whether every request entity matched by `later` is matched by `earlier`.
/// Requests are `ANY` or `SOME` with exactly one value.
fn covers(earlier: &Entity, later: &Entity, hierarchical: bool) -> bool {
    match (earlier.kind, later.kind) {
        // ANY and NONE entries match every request entity.
        (EntityType::Any | EntityType::None, _) => true,
        // `later` matches ANY requests; a SOME entry never does.
        (EntityType::Some, EntityType::Any | EntityType::None) => false,
        (EntityType::Some, EntityType::Some) => later.values.iter().all(|v| {
            earlier.values.iter().any(|e| {
                e == v
                    || (hierarchical
                        && recursive_prefix(e).is_some_and(|p| {
                            // A plain value nested under `p`, or a recursive
                            // value whose nested roles all are.
                            v.starts_with(p)
                        }))
            })
        }),
    }
}

/// For a role ACL value `eng/%`, the prefix `eng/` every strictly nested role
/// starts with (Mesos's `isNestedHierarchy`).
pub(crate) fn recursive_prefix(value: &str) -> Option<&str> {
    value.strip_suffix('%').filter(|p| p.ends_with('/'))
}

fn parse_entry(action: Action, item: &Value, at: &EntryAt) -> Result<Acl, AclsError> {
    let Value::Object(fields) = item else {
        return Err(AclsError::EntryNotObject {
            at: at.clone(),
            found: json_type(item),
        });
    };
    let expected = action.object_key();
    for key in fields.keys() {
        if key == "principals" || key == expected {
            continue;
        }
        if Action::ALL.iter().any(|a| a.object_key() == key) {
            return Err(AclsError::ForeignObjectKey {
                at: at.clone(),
                key: key.clone(),
                expected,
            });
        }
        return Err(AclsError::UnknownEntryField {
            at: at.clone(),
            key: key.clone(),
            expected,
        });
    }
    let principals = fields
        .get("principals")
        .ok_or_else(|| AclsError::MissingPrincipals { at: at.clone() })?;
    let object = fields
        .get(expected)
        .ok_or_else(|| AclsError::MissingObject {
            at: at.clone(),
            expected,
        })?;
    Ok(Acl {
        principals: parse_entity(principals, at, "principals")?,
        object: parse_entity(object, at, expected)?,
    })
}

fn parse_entity(value: &Value, at: &EntryAt, field: &'static str) -> Result<Entity, AclsError> {
    let problem = |problem: String| AclsError::Entity {
        at: at.clone(),
        field,
        problem,
    };
    let Value::Object(map) = value else {
        return Err(problem(format!(
            "must be an object like {{\"values\": [...]}} or {{\"type\": \"ANY\"}}, found {}",
            json_type(value)
        )));
    };
    if let Some(key) = map.keys().find(|k| *k != "type" && *k != "values") {
        return Err(problem(format!(
            "unknown field \"{key}\" (expected \"type\" and \"values\")"
        )));
    }
    let kind = match map.get("type") {
        None => EntityType::Some,
        Some(Value::String(s)) => match s.as_str() {
            "SOME" => EntityType::Some,
            "ANY" => EntityType::Any,
            "NONE" => EntityType::None,
            other => {
                return Err(problem(format!(
                    "unknown type \"{other}\" (expected \"SOME\", \"ANY\" or \"NONE\")"
                )))
            }
        },
        Some(other) => {
            return Err(problem(format!(
                "\"type\" must be a string, found {}",
                json_type(other)
            )))
        }
    };
    let values = match map.get("values") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(problem(format!(
                    "\"values\" must contain only strings, found {}",
                    json_type(other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(problem(format!(
                "\"values\" must be an array of strings, found {}",
                json_type(other)
            )))
        }
    };
    // Mesos ignores `values` for ANY and NONE; dropping them keeps equal
    // entities equal.
    let values = if kind == EntityType::Some {
        values
    } else {
        Vec::new()
    };
    Ok(Entity { kind, values })
}

fn validate_entry(action: Action, acl: &Acl, at: &EntryAt) -> Result<(), AclsError> {
    if acl.object.kind != EntityType::Some {
        return Ok(());
    }
    if action.object_kind() == ObjectKind::AnyOnly {
        return Err(AclsError::ObjectMustBeAnyOrNone {
            at: at.clone(),
            field: action.object_key(),
        });
    }
    if action == Action::GetEndpoints {
        if let Some(path) = acl
            .object
            .values
            .iter()
            .find(|p| !AUTHORIZABLE_ENDPOINTS.contains(&p.as_str()))
        {
            return Err(AclsError::NotAuthorizablePath {
                at: at.clone(),
                path: path.clone(),
            });
        }
    }
    Ok(())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Line numbers of the top-level keys and of each element of their arrays,
/// found by a structural scan of text already known to be valid JSON.
#[derive(Default)]
struct Layout {
    /// key → (line of the key, lines of its array elements)
    keys: HashMap<String, (usize, Vec<usize>)>,
    /// The first top-level key seen twice, with the line of the repeat.
    duplicate: Option<(String, usize)>,
}

fn scan_layout(text: &str) -> Layout {
    let bytes = text.as_bytes();
    let mut layout = Layout::default();
    // Stack of open containers: true for arrays.
    let mut stack: Vec<bool> = Vec::new();
    let mut line = 1;
    let mut expect_key = false;
    let mut expect_element = false;
    let mut current: Option<String> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let depth = stack.len();
        if expect_element && !b.is_ascii_whitespace() && b != b']' {
            if let Some(entry) = current.as_ref().and_then(|k| layout.keys.get_mut(k)) {
                entry.1.push(line);
            }
            expect_element = false;
        }
        match b {
            b'\n' => line += 1,
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && expect_key {
                    let key: String = text
                        .get(start..=i.min(bytes.len() - 1))
                        .and_then(|raw| serde_json::from_str(raw).ok())
                        .unwrap_or_default();
                    if layout.keys.contains_key(&key) && layout.duplicate.is_none() {
                        layout.duplicate = Some((key.clone(), line));
                    }
                    layout.keys.insert(key.clone(), (line, Vec::new()));
                    current = Some(key);
                    expect_key = false;
                }
            }
            b'{' | b'[' => {
                stack.push(b == b'[');
                if stack.len() == 1 {
                    expect_key = true;
                } else if stack.len() == 2 && b == b'[' {
                    expect_element = true;
                }
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if depth == 1 {
                    expect_key = true;
                } else if depth == 2 && stack.last() == Some(&true) {
                    expect_element = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    layout
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Acls::parse(json).expect_err("must be rejected").to_string()
    }

    #[test]
    fn parses_the_mesos_example_with_defaults() {
        let parsed = Acls::parse(
            r#"{
  "register_frameworks": [
    {"principals": {"values": ["a"]}, "roles": {"values": ["prod", "eng/%"]}},
    {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
  ],
  "run_tasks": [{"principals": {"type": "SOME", "values": ["a"]}, "users": {"type": "ANY", "values": ["x"]}}]
}"#,
        )
        .expect("valid ACLs");
        assert!(parsed.acls.permissive);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let rf = parsed.acls.entries(Action::RegisterFrameworks);
        assert_eq!(rf.len(), 2);
        assert_eq!(rf[0].object, Entity::some(["prod", "eng/%"]));
        assert_eq!(rf[1].principals.kind, EntityType::Any);
        assert_eq!(
            parsed.acls.entries(Action::RunTasks)[0].object.kind,
            EntityType::Any
        );
        let again = Acls::parse(&parsed.acls.to_json().to_string()).expect("round trip");
        assert_eq!(again.acls, parsed.acls);
    }

    #[test]
    fn permissive_false_is_read() {
        let parsed = Acls::parse(r#"{"permissive": false}"#).expect("valid");
        assert!(!parsed.acls.permissive);
        assert!(parsed.acls.is_empty());
    }

    #[test]
    fn unknown_action_is_rejected_with_suggestion_and_line() {
        assert_eq!(
            err("{\n \"run_task\": []}"),
            "unknown ACL action 'run_task' (did you mean 'run_tasks'?) (line 2)"
        );
    }

    #[test]
    fn duplicate_action_key_is_rejected() {
        assert_eq!(
            err("{\"run_tasks\": [],\n\"run_tasks\": []}"),
            "ACL action 'run_tasks' appears more than once (line 2)"
        );
    }

    #[test]
    fn missing_principals_names_the_entry_and_line() {
        let json = "{\"run_tasks\": [\n  {\"principals\": {\"type\": \"ANY\"}, \"users\": {\"type\": \"ANY\"}},\n  {\"users\": {\"values\": [\"u\"]}}\n]}";
        assert_eq!(
            err(json),
            "\"run_tasks\" entry #1 (line 3): missing \"principals\""
        );
    }

    #[test]
    fn missing_object_names_the_expected_key() {
        let json = r#"{"teardown_frameworks": [{"principals": {"type": "ANY"}}]}"#;
        assert_eq!(
            err(json),
            "\"teardown_frameworks\" entry #0 (line 1): missing \"framework_principals\""
        );
    }

    #[test]
    fn object_key_of_another_action_is_rejected() {
        let json = r#"{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}"#;
        assert_eq!(
            err(json),
            "\"run_tasks\" entry #0 (line 1): \"roles\" is not an object of \"run_tasks\" (it takes \"users\")"
        );
    }

    #[test]
    fn unknown_entry_field_is_rejected() {
        let json = r#"{"run_tasks": [{"principal": {"type": "ANY"}, "users": {"type": "ANY"}}]}"#;
        assert!(
            err(json).starts_with("\"run_tasks\" entry #0 (line 1): unknown field \"principal\"")
        );
    }

    #[test]
    fn unknown_entity_type_is_rejected() {
        let json = r#"{"view_roles": [{"principals": {"type": "ALL"}, "roles": {"type": "ANY"}}]}"#;
        assert_eq!(
            err(json),
            "\"view_roles\" entry #0 (line 1): \"principals\": unknown type \"ALL\" (expected \"SOME\", \"ANY\" or \"NONE\")"
        );
    }

    #[test]
    fn wrong_json_types_are_rejected_naming_the_entry() {
        let cases = [
            (r#"{"permissive": "yes"}"#, "\"permissive\" must be a boolean, found a string"),
            (r#"[]"#, "ACLs must be a JSON object, found an array"),
            (r#"{"run_tasks": {}}"#, "\"run_tasks\" must be an array of ACL entries, found an object"),
            (
                r#"{"run_tasks": [42]}"#,
                "\"run_tasks\" entry #0 (line 1): an ACL entry must be a JSON object, found a number",
            ),
            (
                r#"{"run_tasks": [{"principals": "alice", "users": {"type": "ANY"}}]}"#,
                "\"run_tasks\" entry #0 (line 1): \"principals\": must be an object",
            ),
            (
                r#"{"run_tasks": [{"principals": {"type": 1}, "users": {"type": "ANY"}}]}"#,
                "\"run_tasks\" entry #0 (line 1): \"principals\": \"type\" must be a string, found a number",
            ),
            (
                r#"{"run_tasks": [{"principals": {"values": "a"}, "users": {"type": "ANY"}}]}"#,
                "\"run_tasks\" entry #0 (line 1): \"principals\": \"values\" must be an array of strings, found a string",
            ),
            (
                r#"{"run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": [1]}}]}"#,
                "\"run_tasks\" entry #0 (line 1): \"users\": \"values\" must contain only strings, found a number",
            ),
            (
                r#"{"run_tasks": [{"principals": {"value": ["a"]}, "users": {"type": "ANY"}}]}"#,
                "\"run_tasks\" entry #0 (line 1): \"principals\": unknown field \"value\"",
            ),
        ];
        for (json, expected) in cases {
            let got = err(json);
            assert!(
                got.starts_with(expected),
                "{json}\n got: {got}\nwant: {expected}"
            );
        }
    }

    #[test]
    fn syntax_error_is_reported() {
        assert!(err("{\"run_tasks\": [").starts_with("ACLs are not valid JSON"));
    }

    #[test]
    fn some_object_on_any_only_action_is_rejected_as_mesos_does() {
        let json =
            r#"{"view_flags": [{"principals": {"type": "ANY"}, "flags": {"values": ["x"]}}]}"#;
        assert_eq!(
            err(json),
            "\"view_flags\" entry #0 (line 1): \"flags\" type must be either NONE or ANY"
        );
    }

    #[test]
    fn unauthorizable_endpoint_path_is_rejected() {
        let json = r#"{"get_endpoints": [{"principals": {"type": "ANY"}, "paths": {"values": ["/metrics/snapshot", "/state"]}}]}"#;
        assert_eq!(
            err(json),
            "\"get_endpoints\" entry #0 (line 1): path '/state' is not an authorizable path"
        );
    }

    #[test]
    fn shadowed_and_dead_entries_are_warnings() {
        let parsed = Acls::parse(
            r#"{"register_frameworks": [
                {"principals": {"type": "ANY"}, "roles": {"values": ["eng/%"]}},
                {"principals": {"values": ["a"]}, "roles": {"values": ["eng/x", "eng/y/%"]}},
                {"principals": {"values": []}, "roles": {"type": "ANY"}},
                {"principals": {"values": ["a"]}, "roles": {"values": ["eng"]}}
            ]}"#,
        )
        .expect("valid");
        assert_eq!(
            parsed.warnings,
            vec![
                "\"register_frameworks\" entry #1 is shadowed by entry #0: every request it matches is decided by #0 first".to_string(),
                "\"register_frameworks\" entry #2: \"principals\" is SOME with no values, so the entry never matches".to_string(),
            ]
        );
    }

    #[test]
    fn flag_accepts_inline_json_path_and_file_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acls.json");
        std::fs::write(&path, r#"{"permissive": false}"#).expect("write");
        let by_path = Acls::from_flag(path.to_str().expect("utf-8")).expect("path");
        let by_url = Acls::from_flag(&format!("file://{}", path.display())).expect("url");
        let inline = Acls::from_flag(r#" {"permissive": false}"#).expect("inline");
        assert!(!by_path.acls.permissive && !by_url.acls.permissive && !inline.acls.permissive);
        let missing = Acls::from_flag("/nonexistent/acls.json").expect_err("missing file");
        assert!(missing
            .to_string()
            .starts_with("reading ACLs file /nonexistent/acls.json"));
    }
}
