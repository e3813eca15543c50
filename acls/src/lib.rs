//! Mesos's local authorizer, secure by default.
//!
//! * [`Acls`] parses the `--acls` JSON exactly as Mesos defines it (every
//!   action key, `permissive`, `SOME`/`ANY`/`NONE` entities) and rejects
//!   mistakes naming the entry; shadowed entries come back as warnings.
//! * [`CasbinAuthorizer`] evaluates ACLs through a casbin priority model with
//!   a bounded decision cache and atomic [`CasbinAuthorizer::reload`].
//! * [`DirectAuthorizer`] is the same semantics in plain Rust (benchmark
//!   baseline and test oracle).
//! * [`DefaultAuthorizer`] is the policy used when no `--acls` is given.
//! * [`ViewFilter`] / [`visible`] filter read views with one check per
//!   distinct object.
//!
//! No network, no IO beyond reading the `--acls` file.

#![warn(missing_docs)]

mod acls;
mod action;
mod cache;
mod casbin;
mod default_policy;
mod error;
mod eval;
mod filter;

pub use crate::acls::{Acl, Acls, Entity, EntityType, Parsed};
pub use crate::action::{Action, ObjectKind, UnknownAction, AUTHORIZABLE_ENDPOINTS};
pub use crate::casbin::{policy_lines, CasbinAuthorizer, DEFAULT_CACHE_CAPACITY, MODEL};
pub use crate::default_policy::{
    DefaultAuthorizer, OWNER_ACTIONS, RESOURCE_OWNER_ACTIONS, RULE_DEFAULT_ROLE, RULE_DENY,
    RULE_NON_ROOT, RULE_NOT_OWN_FRAMEWORK, RULE_NOT_OWN_RESOURCES, RULE_OTHER_ROLE,
    RULE_OWN_FRAMEWORKS, RULE_OWN_NAMESPACE, RULE_OWN_RESOURCES, RULE_RESERVE_OTHER_ROLE,
    RULE_RESERVE_OWN_NAMESPACE, RULE_ROOT,
};
pub use crate::error::{AclsError, EntryAt};
pub use crate::eval::{
    authorize_all, Authorizer, Decision, DirectAuthorizer, Object, Outcome, Request, Rule,
};
pub use crate::filter::{visible, ViewFilter};
