//! Mesos resource arithmetic: [`Resources`] is a normalized bag of
//! `mesos.v1.Resource` values with Mesos's addition, subtraction and
//! containment rules, the agent's `--resources` flag syntax (text and JSON) and
//! the JSON "resources object" that the master's `/state` endpoints show.
//!
//! Pure values: no IO and no cluster state. Scalars use Mesos's fixed-point
//! semantic (three decimal digits), so `0.1 + 0.2 - 0.3` is exactly zero.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::str::FromStr;
use std::sync::Arc;

use mesos_proto::v1::resource::{disk_info, reservation_info, AllocationInfo, ReservationInfo};
use mesos_proto::v1::value::{self, Range, Ranges, Scalar, Set};
use mesos_proto::v1::Resource;

/// Why a resource, a list of resources or a `--resources` value was rejected.
/// Every variant names the offending resource or piece of text.
/// Most entries one resource list may have (a task, an agent, an offer).
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourcesError {
    /// More entries than any sane request carries; normalizing is
    /// quadratic, so a huge list would stall whoever parses it.
    #[error("Too many resources: {count} entries, at most {max} are accepted")]
    TooMany {
        /// Entries given.
        count: usize,
        /// The cap, [`MAX_ENTRIES`].
        max: usize,
    },
    /// A resource without a name.
    #[error("Resource name must not be empty (in '{piece}')")]
    EmptyName {
        /// The resource (text form) that had no name.
        piece: String,
    },
    /// A `--resources` piece that is not `name:value` or `name(role):value`.
    #[error("Bad resource '{piece}': expected 'name:value' or 'name(role):value'")]
    Syntax {
        /// The offending `;`-separated piece.
        piece: String,
    },
    /// A `--resources` value that does not parse.
    #[error("Bad value for resource '{name}': '{value}' ({reason})")]
    BadValue {
        /// Resource name.
        name: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A role in `name(role)` that is not a valid role name.
    #[error("Bad role for resource '{name}': '{role}'")]
    BadRole {
        /// Resource name.
        name: String,
        /// The role as written.
        role: String,
    },
    /// The resource's type is TEXT or unknown.
    #[error("Unsupported type {type_id} for resource '{name}'")]
    UnsupportedType {
        /// Resource name.
        name: String,
        /// The `Value.Type` number.
        type_id: i32,
    },
    /// The value fields do not match the declared type.
    #[error("Resource '{name}' of type {expected} must have exactly the '{field}' value set")]
    TypeMismatch {
        /// Resource name.
        name: String,
        /// The declared type (`SCALAR`, `RANGES`, `SET`).
        expected: &'static str,
        /// The value field that type needs.
        field: &'static str,
    },
    /// A scalar that is negative, NaN or infinite.
    #[error("Invalid scalar value {value} for resource '{name}': must be finite and >= 0")]
    InvalidScalar {
        /// Resource name.
        name: String,
        /// The rejected value.
        value: f64,
    },
    /// A range whose begin is after its end.
    #[error("Invalid range [{begin}-{end}] for resource '{name}': begin is greater than end")]
    InvalidRange {
        /// Resource name.
        name: String,
        /// Range begin.
        begin: u64,
        /// Range end.
        end: u64,
    },
    /// Inconsistent reservation fields.
    #[error("Invalid reservation for resource '{name}': {reason}")]
    InvalidReservation {
        /// Resource name.
        name: String,
        /// What is inconsistent.
        reason: String,
    },
    /// The JSON form of `--resources` is malformed.
    #[error("Bad JSON resources: {reason}")]
    Json {
        /// Parser's complaint, naming the element when there is one.
        reason: String,
    },
}

/// Fixed-point scale: Mesos keeps three decimal digits of scalar precision.
const SCALE: f64 = 1000.0;

/// A scalar value as an integer number of thousandths (Mesos's fixed point).
pub fn to_fixed(value: f64) -> i64 {
    // `as` saturates on overflow and maps NaN to 0; inputs are validated.
    (value * SCALE).round() as i64
}

/// The inverse of [`to_fixed`].
pub fn from_fixed(fixed: i64) -> f64 {
    fixed as f64 / SCALE
}

const SCALAR: i32 = value::Type::Scalar as i32;
const RANGES: i32 = value::Type::Ranges as i32;
const SET: i32 = value::Type::Set as i32;

/// One distinct resource plus, for shared resources, how many copies of it
/// the bag holds (Mesos's `Resource_::sharedCount`). Always 1 otherwise.
///
/// The resource sits behind an `Arc` and is copied on write: a prost
/// `Resource` is over a kilobyte (its `DiskInfo` is inline), and the
/// allocator copies and moves resources on every allocation.
///
/// Next to it sit a few facts read from it on creation and after every
/// write, so that the allocator's hot paths (is it unreserved, how much
/// cpus/mem/disk/gpus) need not touch the resource at all.
#[derive(Clone, Debug)]
struct Entry {
    resource: Arc<Resource>,
    count: u32,
    kind: Kind,
    unreserved: bool,
    /// The scalar value in thousandths; 0 for other types.
    fixed: i64,
}

/// What an entry is, as far as hot paths care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A scalar `cpus`, `mem`, `disk` or `gpus`: the index in
    /// [`STANDARD_SCALARS`].
    Standard(u8),
    /// Any other scalar.
    OtherScalar,
    /// Ranges or a set.
    Other,
}

/// The scalar resources every agent has and DRF compares, in the order
/// [`Resources::standard_scalars_fixed`] reports them.
pub const STANDARD_SCALARS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

impl Entry {
    fn new(resource: Arc<Resource>, count: u32) -> Self {
        let mut e = Entry {
            resource,
            count,
            kind: Kind::Other,
            unreserved: true,
            fixed: 0,
        };
        e.refresh();
        e
    }

    /// Re-reads the cached facts after the resource changed.
    fn refresh(&mut self) {
        let r = &*self.resource;
        self.unreserved = reservation_role(r).is_none();
        if r.r#type == SCALAR {
            self.fixed = fixed_of(r);
            self.kind = match STANDARD_SCALARS.iter().position(|n| *n == r.name) {
                Some(i) => Kind::Standard(i as u8),
                None => Kind::OtherScalar,
            };
        } else {
            self.fixed = 0;
            self.kind = Kind::Other;
        }
    }

    /// Whether the entry may be allocated to `role`, without reading the
    /// resource when it is unreserved.
    fn allocatable_to(&self, role: &str) -> bool {
        self.unreserved || is_allocatable_to(&self.resource, role)
    }

    /// Cheap test that can only rule identity out.
    fn maybe_same_identity(&self, other: &Entry) -> bool {
        self.kind == other.kind && self.unreserved == other.unreserved
    }
}

/// A normalized list of resources, like Mesos's `Resources` class.
///
/// Invariants: every entry is valid and non-empty; no two non-shared,
/// divisible entries are addable (same name, type, reservations, allocation,
/// disk, revocable, shared, provider); scalars are rounded to three decimals;
/// ranges are sorted and coalesced; set items are sorted and unique;
/// the deprecated `role`/`reservation` fields are converted to the
/// `reservations` stack.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    entries: Vec<Entry>,
}

impl Resources {
    /// Validates and normalizes `resources`. Empty resources (zero scalars,
    /// empty ranges or sets) are dropped, as Mesos does.
    pub fn new(resources: Vec<Resource>) -> Result<Self, ResourcesError> {
        if resources.len() > MAX_ENTRIES {
            return Err(ResourcesError::TooMany {
                count: resources.len(),
                max: MAX_ENTRIES,
            });
        }
        let mut out = Resources {
            entries: Vec::with_capacity(resources.len()),
        };
        for resource in resources {
            if let Some(r) = normalize(resource)? {
                out.add_entry(Entry::new(Arc::new(r), 1));
            }
        }
        Ok(out)
    }

    /// Validates one resource and adds it.
    pub fn push(&mut self, resource: Resource) -> Result<(), ResourcesError> {
        if let Some(r) = normalize(resource)? {
            self.add_entry(Entry::new(Arc::new(r), 1));
        }
        Ok(())
    }

    /// Parses the agent's `--resources` flag (text or JSON form) with no
    /// default role: resources without `(role)` are unreserved.
    pub fn parse(text: &str) -> Result<Self, ResourcesError> {
        Self::parse_with_default_role(text, "*")
    }

    /// Parses the agent's `--resources` flag. Text form:
    /// `cpus:2;mem:1024;ports:[31000-32000];disks:{a,b};cpus(role):1`;
    /// JSON form: an array of `Resource` objects. Resources without a role
    /// are statically reserved to `default_role` unless it is `*`.
    ///
    /// Like Mesos (which tokenizes on `;`), empty pieces (`;;`, a trailing
    /// `;`) are ignored, and pieces with the same name add up.
    pub fn parse_with_default_role(text: &str, default_role: &str) -> Result<Self, ResourcesError> {
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            return parse_json(trimmed, default_role);
        }
        let mut out = Resources::default();
        for piece in trimmed.split(';') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let resource = parse_piece(piece, default_role)?;
            if let Some(r) = normalize(resource)? {
                out.add_entry(Entry::new(Arc::new(r), 1));
            }
        }
        Ok(out)
    }

    /// True when there are no resources.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of distinct entries (not a quantity).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The normalized resources, each distinct resource once.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The normalized resources as protobuf values, e.g. for an `Offer`.
    pub fn into_vec(self) -> Vec<Resource> {
        self.entries
            .into_iter()
            .map(|e| Arc::try_unwrap(e.resource).unwrap_or_else(|shared| (*shared).clone()))
            .collect()
    }

    /// Whether every resource in `other` is in `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        if other.entries.len() == 1 {
            let e = &other.entries[0];
            return self.contains_entry(e, 1);
        }
        other.entries.iter().all(|e| {
            let copies = if is_indivisible(&e.resource) && !is_shared(&e.resource) {
                other.count_equal(&e.resource)
            } else {
                1
            };
            self.contains_entry(e, copies)
        })
    }

    /// Whether `resource` (validated and normalized first) is in `self`;
    /// false for an invalid resource.
    pub fn contains_resource(&self, resource: &Resource) -> bool {
        match normalize(resource.clone()) {
            Ok(Some(r)) => self.contains_entry(&Entry::new(Arc::new(r), 1), 1),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The sum of the scalar resources called `name`, over every
    /// reservation, allocation and other identity (0 when absent).
    pub fn scalar(&self, name: &str) -> f64 {
        from_fixed(self.scalar_fixed(name))
    }

    /// Like [`Resources::scalar`], in thousandths.
    pub fn scalar_fixed(&self, name: &str) -> i64 {
        if let Some(i) = STANDARD_SCALARS.iter().position(|n| *n == name) {
            return self.standard_scalars_fixed()[i];
        }
        self.other_scalars_fixed()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .fold(0i64, i64::saturating_add)
    }

    /// `[cpus, mem, disk, gpus]` (see [`STANDARD_SCALARS`]) in thousandths,
    /// summed over every identity. Reads only cached values, not the
    /// resources themselves.
    pub fn standard_scalars_fixed(&self) -> [i64; 4] {
        let mut sums = [0i64; 4];
        for e in &self.entries {
            if let Kind::Standard(i) = e.kind {
                let slot = &mut sums[usize::from(i)];
                *slot = slot.saturating_add(e.fixed);
            }
        }
        sums
    }

    /// Every scalar other than the [`STANDARD_SCALARS`]: name and value in
    /// thousandths, one item per entry.
    pub fn other_scalars_fixed(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::OtherScalar)
            .map(|e| (e.resource.name.as_str(), e.fixed))
    }

    /// Total `cpus`.
    pub fn cpus(&self) -> f64 {
        from_fixed(self.standard_scalars_fixed()[0])
    }

    /// Total `mem` (MB).
    pub fn mem(&self) -> f64 {
        from_fixed(self.standard_scalars_fixed()[1])
    }

    /// Total `disk` (MB).
    pub fn disk(&self) -> f64 {
        from_fixed(self.standard_scalars_fixed()[2])
    }

    /// Total `gpus`.
    pub fn gpus(&self) -> f64 {
        from_fixed(self.standard_scalars_fixed()[3])
    }

    /// Whether any resource may be allocated to `role` (see
    /// [`is_allocatable_to`]).
    pub fn has_allocatable_to(&self, role: &str) -> bool {
        self.entries.iter().any(|e| e.allocatable_to(role))
    }

    /// Moves the resources that may be allocated to `role` out of `self`
    /// and returns them (no copy).
    pub fn extract_allocatable_to(&mut self, role: &str) -> Resources {
        if self.entries.iter().all(|e| e.allocatable_to(role)) {
            return std::mem::take(self);
        }
        let (taken, kept) = self.entries.drain(..).partition(|e| e.allocatable_to(role));
        self.entries = kept;
        Resources { entries: taken }
    }

    /// The union of every `ports` range, sorted and coalesced.
    pub fn ports(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<Range> = self
            .entries
            .iter()
            .filter(|e| e.resource.r#type == RANGES && e.resource.name == "ports")
            .flat_map(|e| ranges_of(&e.resource).iter().cloned())
            .collect();
        coalesce(&mut ranges);
        ranges.into_iter().map(|r| (r.begin, r.end)).collect()
    }

    /// The distinct resource names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .entries
            .iter()
            .map(|e| e.resource.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Marks every resource as allocated to `role` (sets
    /// `allocation_info.role`), as offers carry them.
    pub fn allocate(&mut self, role: &str) {
        let (mut had_allocated, mut changed) = (false, false);
        for e in &mut self.entries {
            if e.resource.allocation_info.is_some() {
                had_allocated = true;
                if allocation_role(&e.resource) == Some(role) {
                    continue;
                }
            }
            changed = true;
            Arc::make_mut(&mut e.resource).allocation_info = Some(AllocationInfo {
                role: Some(role.to_owned()),
            });
        }
        // Entries that differed only by allocation may now share an identity.
        if had_allocated && changed && self.entries.len() > 1 {
            self.renormalize();
        }
    }

    /// Clears `allocation_info` on every resource.
    pub fn unallocate(&mut self) {
        let mut allocated = 0;
        for e in &mut self.entries {
            if e.resource.allocation_info.is_some() {
                Arc::make_mut(&mut e.resource).allocation_info = None;
                allocated += 1;
            }
        }
        // Entries that differed only by allocation role now share an identity.
        if allocated > 0 && self.entries.len() > 1 {
            self.renormalize();
        }
    }

    /// A copy without `allocation_info`.
    pub fn unallocated(&self) -> Resources {
        let mut out = self.clone();
        out.unallocate();
        out
    }

    /// A copy that shares no storage with `self`. `clone` is cheap (entries
    /// are reference-counted and copied on write); this pays the copy up
    /// front, for a value that will be written to soon and often.
    pub fn deep_clone(&self) -> Resources {
        Resources {
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    resource: Arc::new((*e.resource).clone()),
                    count: e.count,
                    kind: e.kind,
                    unreserved: e.unreserved,
                    fixed: e.fixed,
                })
                .collect(),
        }
    }

    /// The resources for which `keep` holds.
    pub fn filter(&self, mut keep: impl FnMut(&Resource) -> bool) -> Resources {
        Resources {
            entries: self
                .entries
                .iter()
                .filter(|e| keep(&e.resource))
                .cloned()
                .collect(),
        }
    }

    /// Moves the resources for which `take` holds out of `self` and returns
    /// them (no copy).
    pub fn extract(&mut self, take: impl Fn(&Resource) -> bool) -> Resources {
        if self.entries.iter().all(|e| take(&e.resource)) {
            return std::mem::take(self);
        }
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            if take(&e.resource) {
                taken.push(e);
            } else {
                kept.push(e);
            }
        }
        self.entries = kept;
        Resources { entries: taken }
    }

    /// Resources reserved to `role` (its most refined reservation), or to
    /// any role when `role` is `None`.
    pub fn reserved(&self, role: Option<&str>) -> Resources {
        self.filter(|r| match (reservation_role(r), role) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        })
    }

    /// Resources not reserved to any role.
    pub fn unreserved(&self) -> Resources {
        self.filter(|r| reservation_role(r).is_none())
    }

    /// Resources that may be allocated to `role`: unreserved ones and those
    /// reserved to `role` or to one of its ancestors (`a` for `a/b`).
    pub fn allocatable_to(&self, role: &str) -> Resources {
        self.filter(|r| is_allocatable_to(r, role))
    }

    /// Revocable resources.
    pub fn revocable(&self) -> Resources {
        self.filter(|r| r.revocable.is_some())
    }

    /// Non-revocable resources.
    pub fn non_revocable(&self) -> Resources {
        self.filter(|r| r.revocable.is_none())
    }

    fn count_equal(&self, r: &Resource) -> u32 {
        self.entries.iter().filter(|e| *e.resource == *r).count() as u32
    }

    /// Whether `self` holds `count` shares of `r` (shared), `copies` equal
    /// copies of `r` (indivisible), or at least `r`'s value (divisible).
    fn contains_entry(&self, want: &Entry, copies: u32) -> bool {
        let (r, count) = (&*want.resource, want.count);
        if is_shared(r) {
            self.entries
                .iter()
                .any(|e| *e.resource == *r && e.count >= count)
        } else if is_indivisible(r) {
            self.count_equal(r) >= copies
        } else {
            self.entries
                .iter()
                .find(|e| {
                    e.maybe_same_identity(want)
                        && !is_shared(&e.resource)
                        && same_identity(&e.resource, r)
                })
                .is_some_and(|e| value_contains(&e.resource, r))
        }
    }

    /// Adds one normalized, non-empty resource (`count` shares if shared).
    fn add_entry(&mut self, new: Entry) {
        let r = &*new.resource;
        if is_shared(r) {
            if let Some(e) = self.entries.iter_mut().find(|e| *e.resource == *r) {
                e.count = e.count.saturating_add(new.count);
                return;
            }
        } else if !is_indivisible(r) {
            if let Some(e) = self.entries.iter_mut().find(|e| {
                e.maybe_same_identity(&new)
                    && !is_shared(&e.resource)
                    && same_identity(&e.resource, r)
            }) {
                merge_values(Arc::make_mut(&mut e.resource), r);
                e.refresh();
                return;
            }
        }
        self.entries.push(new);
    }

    /// Subtracts one normalized resource; what `self` does not hold is
    /// ignored (like Mesos, subtraction saturates instead of going negative).
    fn subtract_entry(&mut self, sub: &Entry) {
        let (r, count) = (&*sub.resource, sub.count);
        if is_shared(r) {
            if let Some(i) = self.entries.iter().position(|e| *e.resource == *r) {
                let e = &mut self.entries[i];
                e.count = e.count.saturating_sub(count);
                if e.count == 0 {
                    self.entries.remove(i);
                }
            }
        } else if is_indivisible(r) {
            if let Some(i) = self.entries.iter().position(|e| *e.resource == *r) {
                self.entries.remove(i);
            }
        } else if let Some(i) = self.entries.iter().position(|e| {
            e.maybe_same_identity(sub) && !is_shared(&e.resource) && same_identity(&e.resource, r)
        }) {
            let e = &mut self.entries[i];
            // Taking all of it needs no copy of a shared entry.
            if value_contains(r, &e.resource) || subtract_values(Arc::make_mut(&mut e.resource), r)
            {
                self.entries.remove(i);
            } else {
                e.refresh();
            }
        }
    }

    fn renormalize(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        self.entries.reserve(entries.len());
        for e in entries {
            self.add_entry(e);
        }
    }
}

impl PartialEq for Resources {
    /// Equal when each contains the other (order does not matter).
    fn eq(&self, other: &Self) -> bool {
        // Normal forms are unique up to order, so lengths must agree.
        self.entries.len() == other.entries.len() && self.contains(other) && other.contains(self)
    }
}

impl TryFrom<Vec<Resource>> for Resources {
    type Error = ResourcesError;

    fn try_from(resources: Vec<Resource>) -> Result<Self, Self::Error> {
        Resources::new(resources)
    }
}

impl FromStr for Resources {
    type Err = ResourcesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Resources::parse(text)
    }
}

/// Iterator over the resources of a [`Resources`].
#[derive(Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, Entry>);

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Resource;

    fn next(&mut self) -> Option<&'a Resource> {
        self.0.next().map(|e| &*e.resource)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Resources {
    type Item = &'a Resource;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        Iter(self.entries.iter())
    }
}

impl From<Resources> for Vec<Resource> {
    fn from(resources: Resources) -> Self {
        resources.into_vec()
    }
}

impl AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, other: &Resources) {
        if self.entries.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        for e in &other.entries {
            self.add_entry(e.clone());
        }
    }
}

impl AddAssign<Resources> for Resources {
    fn add_assign(&mut self, other: Resources) {
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        for e in other.entries {
            self.add_entry(e);
        }
    }
}

impl SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, other: &Resources) {
        for e in &other.entries {
            if self.entries.is_empty() {
                return;
            }
            self.subtract_entry(e);
        }
    }
}

impl SubAssign<Resources> for Resources {
    fn sub_assign(&mut self, other: Resources) {
        *self -= &other;
    }
}

impl Add<&Resources> for &Resources {
    type Output = Resources;

    fn add(self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out += other;
        out
    }
}

impl Add<&Resources> for Resources {
    type Output = Resources;

    fn add(mut self, other: &Resources) -> Resources {
        self += other;
        self
    }
}

impl Add<Resources> for Resources {
    type Output = Resources;

    fn add(mut self, other: Resources) -> Resources {
        self += other;
        self
    }
}

impl Sub<&Resources> for &Resources {
    type Output = Resources;

    fn sub(self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out -= other;
        out
    }
}

impl Sub<&Resources> for Resources {
    type Output = Resources;

    fn sub(mut self, other: &Resources) -> Resources {
        self -= other;
        self
    }
}

impl Sub<Resources> for Resources {
    type Output = Resources;

    fn sub(mut self, other: Resources) -> Resources {
        self -= &other;
        self
    }
}

// ---------------------------------------------------------------------------
// Per-resource helpers.

/// The most refined role `resource` is reserved to, or `None` when it is
/// unreserved (`*`). Reads the `reservations` stack first, then the
/// deprecated `role` and `reservation` fields (pre-refinement format).
pub fn reservation_role(resource: &Resource) -> Option<&str> {
    if let Some(last) = resource.reservations.last() {
        return last.role.as_deref().filter(|r| *r != "*");
    }
    if let Some(role) = resource.role.as_deref().filter(|r| *r != "*") {
        return Some(role);
    }
    resource
        .reservation
        .as_ref()
        .and_then(|r| r.role.as_deref())
        .filter(|r| *r != "*")
}

/// The role `resource` is allocated to (`allocation_info.role`), if any.
pub fn allocation_role(resource: &Resource) -> Option<&str> {
    resource
        .allocation_info
        .as_ref()
        .and_then(|a| a.role.as_deref())
}

/// Whether `child` is a strict descendant of `parent` in the role tree
/// (`a/b` of `a`).
pub fn is_strict_subrole(child: &str, parent: &str) -> bool {
    child.len() > parent.len()
        && child.starts_with(parent)
        && child.as_bytes().get(parent.len()) == Some(&b'/')
}

/// Whether `resource` may be allocated to `role`: it is unreserved, or
/// reserved to `role` or one of its ancestors.
pub fn is_allocatable_to(resource: &Resource, role: &str) -> bool {
    match reservation_role(resource) {
        None => true,
        Some(reserved) => reserved == role || is_strict_subrole(role, reserved),
    }
}

fn is_shared(r: &Resource) -> bool {
    r.shared.is_some()
}

/// Persistent volumes and MOUNT/BLOCK disks cannot be split or merged.
fn is_indivisible(r: &Resource) -> bool {
    let Some(disk) = &r.disk else {
        return false;
    };
    if disk.persistence.is_some() {
        return true;
    }
    disk.source.as_ref().is_some_and(|s| {
        s.r#type == disk_info::source::Type::Mount as i32
            || s.r#type == disk_info::source::Type::Block as i32
    })
}

/// Same everything but the value: such resources add up.
fn same_identity(a: &Resource, b: &Resource) -> bool {
    a.r#type == b.r#type
        && a.name == b.name
        && a.allocation_info == b.allocation_info
        && a.reservations == b.reservations
        && a.revocable.is_some() == b.revocable.is_some()
        && a.shared.is_some() == b.shared.is_some()
        && a.provider_id == b.provider_id
        && a.disk == b.disk
        && a.role == b.role
        && a.reservation == b.reservation
}

fn fixed_of(r: &Resource) -> i64 {
    r.scalar.as_ref().map_or(0, |s| to_fixed(s.value))
}

fn ranges_of(r: &Resource) -> &[Range] {
    r.ranges.as_ref().map_or(&[], |rs| rs.range.as_slice())
}

fn items_of(r: &Resource) -> &[String] {
    r.set.as_ref().map_or(&[], |s| s.item.as_slice())
}

fn is_empty_value(r: &Resource) -> bool {
    match r.r#type {
        SCALAR => fixed_of(r) <= 0,
        RANGES => ranges_of(r).is_empty(),
        SET => items_of(r).is_empty(),
        _ => true,
    }
}

fn merge_values(dst: &mut Resource, src: &Resource) {
    match dst.r#type {
        SCALAR => {
            let sum = fixed_of(dst).saturating_add(fixed_of(src));
            dst.scalar = Some(Scalar {
                value: from_fixed(sum),
            });
        }
        RANGES => {
            let merged = union_ranges(ranges_of(dst), ranges_of(src));
            dst.ranges = Some(Ranges { range: merged });
        }
        SET => {
            let merged = union_sorted(items_of(dst), items_of(src));
            dst.set = Some(Set { item: merged });
        }
        _ => {}
    }
}

/// Subtracts `src`'s value from `dst`'s; true when `dst` became empty.
fn subtract_values(dst: &mut Resource, src: &Resource) -> bool {
    match dst.r#type {
        SCALAR => {
            let left = fixed_of(dst).saturating_sub(fixed_of(src));
            if left <= 0 {
                return true;
            }
            dst.scalar = Some(Scalar {
                value: from_fixed(left),
            });
            false
        }
        RANGES => {
            let left = difference_ranges(ranges_of(dst), ranges_of(src));
            let empty = left.is_empty();
            dst.ranges = Some(Ranges { range: left });
            empty
        }
        SET => {
            let right = items_of(src);
            if let Some(set) = dst.set.as_mut() {
                set.item.retain(|i| right.binary_search(i).is_err());
                set.item.is_empty()
            } else {
                true
            }
        }
        _ => true,
    }
}

fn value_contains(big: &Resource, small: &Resource) -> bool {
    match big.r#type {
        SCALAR => fixed_of(big) >= fixed_of(small),
        RANGES => ranges_contain(ranges_of(big), ranges_of(small)),
        SET => {
            let have = items_of(big);
            items_of(small)
                .iter()
                .all(|i| have.binary_search(i).is_ok())
        }
        _ => false,
    }
}

/// Validates `resource` and brings it to normal form; `None` when empty.
fn normalize(mut r: Resource) -> Result<Option<Resource>, ResourcesError> {
    if r.name.is_empty() {
        return Err(ResourcesError::EmptyName {
            piece: ResourceText(&r).to_string(),
        });
    }
    let mismatch = |expected, field| ResourcesError::TypeMismatch {
        name: r.name.clone(),
        expected,
        field,
    };
    match r.r#type {
        SCALAR => {
            if r.ranges.is_some() || r.set.is_some() {
                return Err(mismatch("SCALAR", "scalar"));
            }
            let Some(scalar) = r.scalar.as_mut() else {
                return Err(mismatch("SCALAR", "scalar"));
            };
            if !scalar.value.is_finite() || scalar.value < 0.0 {
                return Err(ResourcesError::InvalidScalar {
                    name: r.name.clone(),
                    value: scalar.value,
                });
            }
            scalar.value = from_fixed(to_fixed(scalar.value));
        }
        RANGES => {
            if r.scalar.is_some() || r.set.is_some() {
                return Err(mismatch("RANGES", "ranges"));
            }
            let Some(ranges) = r.ranges.as_mut() else {
                return Err(mismatch("RANGES", "ranges"));
            };
            if let Some(bad) = ranges.range.iter().find(|x| x.begin > x.end) {
                return Err(ResourcesError::InvalidRange {
                    name: r.name.clone(),
                    begin: bad.begin,
                    end: bad.end,
                });
            }
            coalesce(&mut ranges.range);
        }
        SET => {
            if r.scalar.is_some() || r.ranges.is_some() {
                return Err(mismatch("SET", "set"));
            }
            let Some(set) = r.set.as_mut() else {
                return Err(mismatch("SET", "set"));
            };
            set.item.sort_unstable();
            set.item.dedup();
        }
        other => {
            return Err(ResourcesError::UnsupportedType {
                name: r.name.clone(),
                type_id: other,
            })
        }
    }
    upgrade_reservations(&mut r)?;
    if is_empty_value(&r) {
        return Ok(None);
    }
    Ok(Some(r))
}

/// Converts the pre-refinement `role` + `reservation` fields into the
/// `reservations` stack (Mesos's "post-reservation-refinement" format).
fn upgrade_reservations(r: &mut Resource) -> Result<(), ResourcesError> {
    let invalid = |reason: &str| ResourcesError::InvalidReservation {
        name: r.name.clone(),
        reason: reason.to_owned(),
    };
    let legacy_role = r.role.as_deref().filter(|role| *role != "*");
    if r.reservations.is_empty() {
        let legacy = r.reservation.take();
        match (legacy_role, legacy) {
            (Some(role), legacy) => {
                let role = role.to_owned();
                let (kind, principal, labels) = match legacy {
                    Some(info) => (reservation_info::Type::Dynamic, info.principal, info.labels),
                    None => (reservation_info::Type::Static, None, None),
                };
                r.reservations.push(ReservationInfo {
                    r#type: Some(kind as i32),
                    role: Some(role),
                    principal,
                    labels,
                });
            }
            (None, Some(info)) => match info.role.as_deref() {
                Some(role) if role != "*" && !role.is_empty() => r.reservations.push(*info),
                _ => return Err(invalid("a 'reservation' needs a role other than '*'")),
            },
            (None, None) => {}
        }
    } else if legacy_role.is_some() || r.reservation.is_some() {
        return Err(invalid(
            "both 'reservations' and the deprecated 'role'/'reservation' are set",
        ));
    }
    r.role = None;
    r.reservation = None;
    for info in &r.reservations {
        match info.role.as_deref() {
            Some(role) if valid_role(role) => {}
            _ => {
                return Err(invalid(
                    "every reservation needs a valid role other than '*'",
                ))
            }
        }
    }
    // Each refinement reserves to a strict subrole of the reservation
    // below it, and only the bottom one may be static (Mesos's
    // `Resources::validate`).
    for pair in r.reservations.windows(2) {
        let (below, above) = (&pair[0], &pair[1]);
        if above.r#type == Some(reservation_info::Type::Static as i32) {
            return Err(invalid("a refined reservation cannot be STATIC"));
        }
        let (parent, child) = (
            below.role.as_deref().unwrap_or_default(),
            above.role.as_deref().unwrap_or_default(),
        );
        if !is_strict_subrole(child, parent) {
            return Err(ResourcesError::InvalidReservation {
                name: r.name.clone(),
                reason: format!("role '{child}' is not a refinement of '{parent}'"),
            });
        }
    }
    Ok(())
}

/// Mesos's role name rules, minus the reserved `*`.
fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role != "*"
        && !role.starts_with('/')
        && !role.ends_with('/')
        && !role.contains("//")
        && role
            .split('/')
            .all(|part| part != "." && part != ".." && !part.starts_with('-'))
        && !role.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '\\' | '(' | ')' | ';' | ':')
        })
}

// ---------------------------------------------------------------------------
// Ranges and sets on sorted, coalesced slices.

/// Sorts ranges and merges overlapping or adjacent ones.
fn coalesce(ranges: &mut Vec<Range>) {
    if ranges.len() < 2 {
        return;
    }
    ranges.sort_unstable_by_key(|r| (r.begin, r.end));
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.begin <= last.end.saturating_add(1) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    *ranges = out;
}

fn union_ranges(a: &[Range], b: &[Range]) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = if j >= b.len() || (i < a.len() && a[i].begin <= b[j].begin) {
            i += 1;
            &a[i - 1]
        } else {
            j += 1;
            &b[j - 1]
        };
        match out.last_mut() {
            Some(last) if next.begin <= last.end.saturating_add(1) => {
                last.end = last.end.max(next.end);
            }
            _ => out.push(*next),
        }
    }
    out
}

fn difference_ranges(a: &[Range], b: &[Range]) -> Vec<Range> {
    let mut out = Vec::with_capacity(a.len() + 1);
    let mut j = 0;
    for r in a {
        let (mut begin, end) = (r.begin, r.end);
        // Skip subtrahends entirely before this range.
        while j < b.len() && b[j].end < begin {
            j += 1;
        }
        let mut k = j;
        let mut alive = true;
        while k < b.len() && b[k].begin <= end {
            if b[k].begin > begin {
                out.push(Range {
                    begin,
                    end: b[k].begin - 1,
                });
            }
            if b[k].end >= end {
                alive = false;
                break;
            }
            begin = b[k].end + 1;
            k += 1;
        }
        if alive {
            out.push(Range { begin, end });
        }
    }
    out
}

fn ranges_contain(big: &[Range], small: &[Range]) -> bool {
    let mut i = 0;
    for r in small {
        while i < big.len() && big[i].end < r.begin {
            i += 1;
        }
        match big.get(i) {
            Some(b) if b.begin <= r.begin && r.end <= b.end => {}
            _ => return false,
        }
    }
    true
}

fn union_sorted(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend(a[i..].iter().cloned());
    out.extend(b[j..].iter().cloned());
    out
}

// ---------------------------------------------------------------------------
// `--resources` parsing.

/// Parses one `name(role):value` piece into an unvalidated resource.
fn parse_piece(piece: &str, default_role: &str) -> Result<Resource, ResourcesError> {
    let (head, value) = piece
        .split_once(':')
        .ok_or_else(|| ResourcesError::Syntax {
            piece: piece.to_owned(),
        })?;
    if value.contains(':') {
        return Err(ResourcesError::Syntax {
            piece: piece.to_owned(),
        });
    }
    let head = head.trim();
    let value = value.trim();
    let (name, role) = match head.split_once('(') {
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or_else(|| ResourcesError::Syntax {
                    piece: piece.to_owned(),
                })?;
            (name.trim(), role.trim())
        }
        None => (head, default_role),
    };
    if name.is_empty() {
        return Err(ResourcesError::EmptyName {
            piece: piece.to_owned(),
        });
    }
    if name.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '{' | '}'))
    {
        return Err(ResourcesError::Syntax {
            piece: piece.to_owned(),
        });
    }
    if role != "*" && !valid_role(role) {
        return Err(ResourcesError::BadRole {
            name: name.to_owned(),
            role: role.to_owned(),
        });
    }
    let bad = |reason: &str| ResourcesError::BadValue {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let mut resource = Resource {
        name: name.to_owned(),
        ..Default::default()
    };
    if value.is_empty() {
        return Err(bad("empty value"));
    } else if let Some(rest) = value.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or_else(|| bad("missing ']'"))?;
        let mut ranges = Vec::new();
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (begin, end) = part
                .split_once('-')
                .ok_or_else(|| bad("expected ranges like [31000-32000, 33000-33010]"))?;
            let begin: u64 = begin
                .trim()
                .parse()
                .map_err(|_| bad("range bound is not a number"))?;
            let end: u64 = end
                .trim()
                .parse()
                .map_err(|_| bad("range bound is not a number"))?;
            if begin > end {
                return Err(bad("range begin is greater than its end"));
            }
            ranges.push(Range { begin, end });
        }
        resource.r#type = RANGES;
        resource.ranges = Some(Ranges { range: ranges });
    } else if let Some(rest) = value.strip_prefix('{') {
        let inner = rest.strip_suffix('}').ok_or_else(|| bad("missing '}'"))?;
        let items = inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        resource.r#type = SET;
        resource.set = Some(Set { item: items });
    } else {
        let number: f64 = value.parse().map_err(|_| bad("not a number"))?;
        if !number.is_finite() || number < 0.0 {
            return Err(bad("must be a finite number >= 0"));
        }
        resource.r#type = SCALAR;
        resource.scalar = Some(Scalar { value: number });
    }
    if role != "*" {
        resource.reservations.push(ReservationInfo {
            r#type: Some(reservation_info::Type::Static as i32),
            role: Some(role.to_owned()),
            principal: None,
            labels: None,
        });
    }
    Ok(resource)
}

fn parse_json(text: &str, default_role: &str) -> Result<Resources, ResourcesError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ResourcesError::Json {
            reason: e.to_string(),
        })?;
    let serde_json::Value::Array(items) = value else {
        return Err(ResourcesError::Json {
            reason: "expected a JSON array of Resource objects".to_owned(),
        });
    };
    let mut out = Resources::default();
    for (index, item) in items.into_iter().enumerate() {
        let mut resource =
            mesos_proto::json::from_value::<Resource>(item).map_err(|e| ResourcesError::Json {
                reason: format!("element {index}: {e}"),
            })?;
        let unreserved = resource.reservations.is_empty()
            && resource.reservation.is_none()
            && resource.role.as_deref().is_none_or(|r| r == "*");
        if unreserved && default_role != "*" {
            resource.reservations.push(ReservationInfo {
                r#type: Some(reservation_info::Type::Static as i32),
                role: Some(default_role.to_owned()),
                principal: None,
                labels: None,
            });
            resource.role = None;
        }
        if let Some(r) = normalize(resource)? {
            out.add_entry(Entry::new(Arc::new(r), 1));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Formatting.

struct RangesText<'a>(&'a [Range]);

impl fmt::Display for RangesText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}-{}", r.begin, r.end)?;
        }
        f.write_str("]")
    }
}

struct SetText<'a>(&'a [String]);

impl fmt::Display for SetText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item)?;
        }
        f.write_str("}")
    }
}

/// One resource in the `--resources` text form, with Mesos's markers for
/// what that form cannot say: `(allocated: role)`, `[volume]`, `{REV}`,
/// `<SHARED>`.
pub struct ResourceText<'a>(pub &'a Resource);

impl fmt::Display for ResourceText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        f.write_str(&r.name)?;
        if let Some(role) = reservation_role(r) {
            write!(f, "({role})")?;
        }
        if let Some(role) = allocation_role(r) {
            write!(f, "(allocated: {role})")?;
        }
        if let Some(disk) = &r.disk {
            if let Some(p) = &disk.persistence {
                let path = disk
                    .volume
                    .as_ref()
                    .map_or("", |v| v.container_path.as_str());
                write!(f, "[{}:{}]", p.id, path)?;
            } else if let Some(source) = &disk.source {
                let kind = disk_info::source::Type::try_from(source.r#type)
                    .map_or("UNKNOWN", |t| t.as_str_name());
                write!(f, "[{kind}]")?;
            }
        }
        if r.revocable.is_some() {
            f.write_str("{REV}")?;
        }
        if r.shared.is_some() {
            f.write_str("<SHARED>")?;
        }
        f.write_str(":")?;
        match r.r#type {
            SCALAR => write!(f, "{}", r.scalar.as_ref().map_or(0.0, |s| s.value)),
            RANGES => write!(f, "{}", RangesText(ranges_of(r))),
            SET => write!(f, "{}", SetText(items_of(r))),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Resources {
    /// `cpus:2; mem:1024; ports:[31000-32000]`, as Mesos prints resources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", ResourceText(&e.resource))?;
        }
        Ok(())
    }
}

/// Mesos's classic JSON "resources object" (`model(Resources)` in Mesos's
/// `common/http.cpp`), as `/master/state` shows it: a flat object with
/// `cpus`, `gpus`, `mem` and `disk` always present, every scalar summed over
/// all reservations as a number, ranges as `"[31000-32000, 33000-33010]"`,
/// sets as `"{a, b}"`, and revocable resources under `<name>_revocable`.
///
/// Numbers are always JSON floats (`0.0` for an absent `cpus`).
pub fn to_state_json(resources: &Resources) -> serde_json::Value {
    enum Acc {
        Scalar(i64),
        Ranges(Vec<Range>),
        Set(Vec<String>),
    }
    let mut acc: Vec<(Cow<'_, str>, Acc)> = Vec::with_capacity(resources.len() + 4);
    for e in &resources.entries {
        let r = &e.resource;
        let key: Cow<'_, str> = if r.revocable.is_some() {
            Cow::Owned(format!("{}_revocable", r.name))
        } else {
            Cow::Borrowed(r.name.as_str())
        };
        let slot = match acc.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut acc[i].1,
            None => {
                let fresh = match r.r#type {
                    SCALAR => Acc::Scalar(0),
                    RANGES => Acc::Ranges(Vec::new()),
                    _ => Acc::Set(Vec::new()),
                };
                acc.push((key, fresh));
                let last = acc.len() - 1;
                &mut acc[last].1
            }
        };
        // A name used with two types keeps the first one, like Mesos's `get`.
        match (slot, r.r#type) {
            (Acc::Scalar(sum), SCALAR) => *sum = sum.saturating_add(fixed_of(r)),
            (Acc::Ranges(all), RANGES) => all.extend(ranges_of(r).iter().cloned()),
            (Acc::Set(all), SET) => all.extend(items_of(r).iter().cloned()),
            _ => {}
        }
    }
    let mut object = serde_json::Map::new();
    for name in ["cpus", "gpus", "mem", "disk"] {
        object.insert(name.to_owned(), serde_json::Value::from(0.0));
    }
    for (key, value) in acc {
        let json = match value {
            Acc::Scalar(sum) => serde_json::Value::from(from_fixed(sum)),
            Acc::Ranges(mut all) => {
                coalesce(&mut all);
                serde_json::Value::from(RangesText(&all).to_string())
            }
            Acc::Set(mut all) => {
                all.sort_unstable();
                all.dedup();
                serde_json::Value::from(SetText(&all).to_string())
            }
        };
        object.insert(key.into_owned(), json);
    }
    serde_json::Value::Object(object)
}

/// The `resources`/`volumes` parameter of the operator endpoints
/// (`/master/reserve`, ...): a JSON array of `Resource` objects in protobuf
/// JSON, each validated on its own so the error names the bad one. `key`
/// names the parameter in errors.
pub fn parse_resource_array(key: &str, text: &str) -> Result<Vec<Resource>, String> {
    let prefix = format!("Error in parsing '{key}' query parameter in the request body");
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{prefix}: {e}"))?;
    let serde_json::Value::Array(items) = value else {
        return Err(format!("{prefix}: expected a JSON array of resources"));
    };
    if items.len() > MAX_ENTRIES {
        return Err(format!(
            "{prefix}: {} resources given, at most {} are accepted",
            items.len(),
            MAX_ENTRIES
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let resource: Resource = mesos_proto::json::from_value(item)
            .map_err(|e| format!("{prefix}: resource {i}: {e}"))?;
        Resources::new(vec![resource.clone()])
            .map_err(|e| format!("Resource {i} is invalid: {e}"))?;
        out.push(resource);
    }
    Ok(out)
}

/// Resources as Mesos's `*_full` fields show them: an array of `Resource`
/// objects in protobuf JSON (reservations stack, disk info and all), which
/// can be sent back to the operator endpoints as they are.
pub fn to_full_json(resources: &Resources) -> serde_json::Value {
    serde_json::Value::Array(resources.iter().map(mesos_proto::json::to_value).collect())
}

/// The reservation fields of Mesos's agent JSON: `reserved_resources`
/// (role → resources object), `reserved_resources_full` (role → array),
/// `unreserved_resources` and `unreserved_resources_full`, for `total`.
pub fn reservation_fields(total: &Resources) -> serde_json::Map<String, serde_json::Value> {
    let mut by_role: std::collections::BTreeMap<&str, Resources> = Default::default();
    for e in &total.entries {
        if let Some(role) = reservation_role(&e.resource) {
            by_role.entry(role).or_default().add_entry(e.clone());
        }
    }
    let unreserved = total.unreserved();
    let mut out = serde_json::Map::new();
    out.insert(
        "reserved_resources".into(),
        by_role
            .iter()
            .map(|(role, r)| (role.to_string(), to_state_json(r)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    out.insert(
        "reserved_resources_full".into(),
        by_role
            .iter()
            .map(|(role, r)| (role.to_string(), to_full_json(r)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    out.insert("unreserved_resources".into(), to_state_json(&unreserved));
    out.insert(
        "unreserved_resources_full".into(),
        to_full_json(&unreserved),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::v1::resource::{DiskInfo, RevocableInfo, SharedInfo};
    use proptest::prelude::*;
    use serde_json::json;

    fn res(text: &str) -> Resources {
        Resources::parse(text).expect("test resources parse")
    }

    fn scalar(name: &str, value: f64) -> Resource {
        Resource {
            name: name.to_owned(),
            r#type: SCALAR,
            scalar: Some(Scalar { value }),
            ..Default::default()
        }
    }

    fn err(text: &str) -> ResourcesError {
        Resources::parse(text).expect_err("the text should be rejected")
    }

    #[test]
    fn parses_the_classic_agent_flag() {
        let r = res("cpus:2;mem:1024;disk:4096;ports:[31000-32000,33000-33010];gpus:0;foo:{a,b}");
        assert_eq!(r.cpus(), 2.0);
        assert_eq!(r.mem(), 1024.0);
        assert_eq!(r.disk(), 4096.0);
        assert_eq!(r.gpus(), 0.0);
        assert_eq!(r.ports(), vec![(31000, 32000), (33000, 33010)]);
        // gpus:0 is empty and dropped, as Mesos does.
        assert_eq!(r.len(), 5);
        assert_eq!(
            r.to_string(),
            "cpus:2; mem:1024; disk:4096; ports:[31000-32000, 33000-33010]; foo:{a, b}"
        );
    }

    #[test]
    fn role_in_parentheses_is_a_static_reservation() {
        let r = res("cpus(web):2; cpus:1; mem(*):10");
        assert_eq!(r.cpus(), 3.0);
        assert_eq!(r.reserved(Some("web")).cpus(), 2.0);
        assert_eq!(r.unreserved().cpus(), 1.0);
        assert_eq!(r.unreserved().mem(), 10.0);
        let reserved = r.reserved(None).into_vec();
        assert_eq!(reserved.len(), 1);
        assert_eq!(reservation_role(&reserved[0]), Some("web"));
        assert_eq!(
            reserved[0].reservations[0].r#type,
            Some(reservation_info::Type::Static as i32)
        );
        assert_eq!(r.to_string(), "cpus(web):2; cpus:1; mem:10");
    }

    #[test]
    fn a_refinement_must_reserve_to_a_subrole_and_never_be_static() {
        let info = |role: &str, kind: reservation_info::Type| ReservationInfo {
            r#type: Some(kind as i32),
            role: Some(role.into()),
            principal: None,
            labels: None,
        };
        let mut r = scalar("cpus", 1.0);
        r.reservations = vec![
            info("dev", reservation_info::Type::Static),
            info("dev/web", reservation_info::Type::Dynamic),
        ];
        assert!(Resources::new(vec![r.clone()]).is_ok());
        r.reservations[1] = info("ops", reservation_info::Type::Dynamic);
        let err = Resources::new(vec![r.clone()]).expect_err("not a refinement");
        assert!(
            err.to_string().contains("not a refinement of 'dev'"),
            "{err}"
        );
        r.reservations[1] = info("dev/web", reservation_info::Type::Static);
        assert!(
            Resources::new(vec![r]).is_err(),
            "a refinement cannot be STATIC"
        );
    }

    #[test]
    fn default_role_reserves_unqualified_resources() {
        let r = Resources::parse_with_default_role("cpus:2;mem(*):5", "batch").expect("parses");
        assert_eq!(r.reserved(Some("batch")).cpus(), 2.0);
        assert_eq!(r.unreserved().mem(), 5.0);
    }

    #[test]
    fn malformed_text_is_rejected_naming_the_piece() {
        assert!(
            matches!(err("cpus:"), ResourcesError::BadValue { ref name, .. } if name == "cpus")
        );
        assert_eq!(
            err("cpus:x").to_string(),
            "Bad value for resource 'cpus': 'x' (not a number)"
        );
        assert!(err("cpus:x")
            .to_string()
            .starts_with("Bad value for resource 'cpus': 'x'"));
        assert!(
            matches!(err("ports:[5-1]"), ResourcesError::BadValue { ref value, .. } if value == "[5-1]")
        );
        assert!(
            matches!(err("ports:[1-2"), ResourcesError::BadValue { ref reason, .. } if reason.contains("]"))
        );
        assert!(matches!(
            err("ports:[a-2]"),
            ResourcesError::BadValue { .. }
        ));
        assert!(matches!(err("ports:[12]"), ResourcesError::BadValue { .. }));
        assert!(matches!(err("foo:{a,b"), ResourcesError::BadValue { .. }));
        assert!(matches!(err(":3"), ResourcesError::EmptyName { ref piece } if piece == ":3"));
        assert!(matches!(err("cpus"), ResourcesError::Syntax { ref piece } if piece == "cpus"));
        assert!(matches!(err("cpus:1:2"), ResourcesError::Syntax { .. }));
        assert!(matches!(err("cpus(web:1"), ResourcesError::Syntax { .. }));
        assert!(matches!(err("cpus():1"), ResourcesError::BadRole { .. }));
        assert!(matches!(err("cpus:-1"), ResourcesError::BadValue { .. }));
        assert!(matches!(err("cpus:nan"), ResourcesError::BadValue { .. }));
        assert!(matches!(err("cpus:inf"), ResourcesError::BadValue { .. }));
    }

    #[test]
    fn empty_pieces_are_ignored_like_mesos_tokenize() {
        assert_eq!(res("cpus:1;;mem:2;"), res("cpus:1;mem:2"));
        assert!(res("").is_empty());
        assert!(res(";;").is_empty());
    }

    #[test]
    fn repeated_names_add_up() {
        let r = res("cpus:1;cpus:2.5;ports:[1-5];ports:[6-9]");
        assert_eq!(r.cpus(), 3.5);
        assert_eq!(r.ports(), vec![(1, 9)]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn json_form_is_parsed_per_element() {
        let r = res(r#"[
            {"name":"cpus","type":"SCALAR","scalar":{"value":2}},
            {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":3}]}},
            {"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"web"}
        ]"#);
        assert_eq!(r.unreserved().cpus(), 2.0);
        assert_eq!(r.reserved(Some("web")).cpus(), 1.0);
        assert_eq!(r.ports(), vec![(1, 3)]);
        let e = err(r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]"#);
        assert!(matches!(e, ResourcesError::InvalidScalar { .. }), "{e}");
        let e = err(r#"[{"type":"SCALAR","scalar":{"value":1}}]"#);
        assert!(
            matches!(e, ResourcesError::Json { ref reason } if reason.contains("element 0")),
            "{e}"
        );
        assert!(matches!(err("[1,"), ResourcesError::Json { .. }));
    }

    #[test]
    fn validation_names_the_resource() {
        let mut mismatched = scalar("cpus", 1.0);
        mismatched.r#type = RANGES;
        let e = Resources::new(vec![mismatched]).expect_err("type mismatch");
        assert!(e.to_string().contains("'cpus'"), "{e}");
        let e = Resources::new(vec![scalar("", 1.0)]).expect_err("empty name");
        assert!(matches!(e, ResourcesError::EmptyName { .. }));
        let e = Resources::new(vec![scalar("mem", f64::NAN)]).expect_err("nan");
        assert!(matches!(e, ResourcesError::InvalidScalar { ref name, .. } if name == "mem"));
        let bad_range = Resource {
            name: "ports".into(),
            r#type: RANGES,
            ranges: Some(Ranges {
                range: vec![Range { begin: 9, end: 3 }],
            }),
            ..Default::default()
        };
        let e = Resources::new(vec![bad_range]).expect_err("bad range");
        assert!(matches!(
            e,
            ResourcesError::InvalidRange {
                begin: 9,
                end: 3,
                ..
            }
        ));
        let mut text = scalar("cpus", 1.0);
        text.r#type = value::Type::Text as i32;
        text.scalar = None;
        assert!(matches!(
            Resources::new(vec![text]),
            Err(ResourcesError::UnsupportedType { .. })
        ));
    }

    #[test]
    fn fixed_point_makes_decimal_arithmetic_exact() {
        let sum = res("cpus:0.1") + &res("cpus:0.2");
        assert_eq!(sum.cpus(), 0.3);
        let rest = sum - &res("cpus:0.3");
        assert!(rest.is_empty(), "{rest}");
        assert_eq!(res("cpus:0.0004").len(), 0);
        assert_eq!(res("cpus:1.0006").cpus(), 1.001);
    }

    #[test]
    fn subtraction_splits_ranges_and_removes_exhausted_scalars() {
        let r = res("cpus:2;ports:[1-10]") - &res("cpus:2;ports:[4-5]");
        assert_eq!(r.cpus(), 0.0);
        assert_eq!(r.ports(), vec![(1, 3), (6, 10)]);
        assert_eq!(r.len(), 1);
        // More than we have saturates at nothing instead of going negative.
        let r = res("cpus:1;mem:5") - &res("cpus:3;disk:7");
        assert_eq!(r, res("mem:5"));
    }

    #[test]
    fn sets_union_and_difference() {
        let r = res("foo:{a,b}") + &res("foo:{b,c}");
        assert_eq!(r.to_string(), "foo:{a, b, c}");
        assert!(r.contains(&res("foo:{c,a}")));
        assert!(!r.contains(&res("foo:{d}")));
        assert_eq!((r - &res("foo:{a,c}")).to_string(), "foo:{b}");
    }

    #[test]
    fn different_identities_do_not_merge() {
        let mut r = res("cpus:1;cpus(web):2");
        r.allocate("web");
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|x| allocation_role(x) == Some("web")));
        assert!(!r.contains(&res("cpus:1")));
        assert!(r.unallocated().contains(&res("cpus:1;cpus(web):2")));
        let mut revocable = scalar("cpus", 1.0);
        revocable.revocable = Some(RevocableInfo {});
        let both = res("cpus:1") + &Resources::new(vec![revocable]).expect("valid");
        assert_eq!(both.len(), 2);
        assert_eq!(both.revocable().cpus(), 1.0);
    }

    #[test]
    fn allocation_roles_merge_when_unallocated() {
        let mut a = res("cpus:1");
        a.allocate("x");
        let mut b = res("cpus:2");
        b.allocate("y");
        let both = a + b;
        assert_eq!(both.len(), 2);
        let plain = both.unallocated();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain.cpus(), 3.0);
        let mut again = both.clone();
        again.allocate("z");
        assert_eq!(again.len(), 1);
        // Partly allocated already: the rest joins the allocated entry.
        let mut part = res("cpus:1");
        part.allocate("x");
        let mut mixed = part + res("cpus:2");
        assert_eq!(mixed.len(), 2);
        mixed.allocate("x");
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed.cpus(), 3.0);
    }

    #[test]
    fn hierarchical_reservations_are_allocatable_to_subroles() {
        let r = res("cpus(eng):1;cpus(eng/web):2;cpus:4;cpus(ops):8");
        assert_eq!(r.allocatable_to("eng/web").cpus(), 7.0);
        assert_eq!(r.allocatable_to("eng").cpus(), 5.0);
        assert_eq!(r.allocatable_to("engineering").cpus(), 4.0);
        assert!(is_strict_subrole("a/b", "a"));
        assert!(!is_strict_subrole("ab", "a"));
        assert!(!is_strict_subrole("a", "a"));
    }

    #[test]
    fn deprecated_role_fields_are_upgraded() {
        let mut legacy = scalar("cpus", 1.0);
        legacy.role = Some("web".into());
        assert_eq!(reservation_role(&legacy), Some("web"));
        let r = Resources::new(vec![legacy]).expect("valid");
        let only = r.iter().next().expect("one resource");
        assert_eq!(only.role, None);
        assert_eq!(reservation_role(only), Some("web"));
        let mut star = scalar("cpus", 1.0);
        star.role = Some("*".into());
        assert_eq!(reservation_role(&star), None);
        assert_eq!(Resources::new(vec![star]).expect("valid"), res("cpus:1"));
        let mut dynamic = scalar("cpus", 1.0);
        dynamic.role = Some("web".into());
        dynamic.reservation = Some(Box::new(ReservationInfo {
            principal: Some("ops".into()),
            ..Default::default()
        }));
        let r = Resources::new(vec![dynamic]).expect("valid");
        let only = r.iter().next().expect("one resource");
        assert_eq!(
            only.reservations[0].r#type,
            Some(reservation_info::Type::Dynamic as i32)
        );
        assert_eq!(only.reservations[0].principal.as_deref(), Some("ops"));
    }

    #[test]
    fn persistent_volumes_are_indivisible() {
        let mut volume = scalar("disk", 100.0);
        volume.reservations.push(ReservationInfo {
            r#type: Some(reservation_info::Type::Dynamic as i32),
            role: Some("db".into()),
            ..Default::default()
        });
        volume.disk = Some(Box::new(DiskInfo {
            persistence: Some(disk_info::Persistence {
                id: "v1".into(),
                principal: None,
            }),
            ..Default::default()
        }));
        let one = Resources::new(vec![volume.clone()]).expect("valid");
        let two = &one + &one;
        assert_eq!(two.len(), 2);
        assert_eq!(two.disk(), 200.0);
        let mut half = volume.clone();
        half.scalar = Some(Scalar { value: 50.0 });
        let half = Resources::new(vec![half]).expect("valid");
        assert!(!two.contains(&half));
        assert_eq!(&two - &half, two);
        assert_eq!(&two - &one, one);
        assert!(two.contains(&two));
        assert!(!one.contains(&two));
        assert!(one.to_string().starts_with("disk(db)[v1:]:100"));
    }

    #[test]
    fn shared_resources_count_copies() {
        let mut volume = scalar("disk", 10.0);
        volume.shared = Some(SharedInfo {});
        let one = Resources::new(vec![volume]).expect("valid");
        let two = &one + &one;
        assert_eq!(two.len(), 1);
        assert!(two.contains(&one));
        assert!(!one.contains(&two));
        assert_eq!(&two - &one, one);
        assert!((&one - &one).is_empty());
    }

    #[test]
    fn state_json_matches_mesos_model() {
        let mut r = res("cpus:2;cpus(web):1.5;mem:1024;ports:[31000-32000,33000-33010];foo:{b,a}");
        let mut revocable = scalar("cpus", 0.5);
        revocable.revocable = Some(RevocableInfo {});
        r.push(revocable).expect("valid");
        assert_eq!(
            to_state_json(&r),
            json!({
                "cpus": 3.5,
                "gpus": 0.0,
                "mem": 1024.0,
                "disk": 0.0,
                "ports": "[31000-32000, 33000-33010]",
                "foo": "{a, b}",
                "cpus_revocable": 0.5,
            })
        );
        assert_eq!(
            serde_json::to_string(&to_state_json(&Resources::default())).expect("serializes"),
            r#"{"cpus":0.0,"disk":0.0,"gpus":0.0,"mem":0.0}"#
        );
    }

    #[test]
    fn ports_merge_across_reservations() {
        let r = res("ports(web):[10-20];ports:[21-30,40-41]");
        assert_eq!(r.ports(), vec![(10, 30), (40, 41)]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn extract_moves_matching_entries() {
        let mut r = res("cpus:1;cpus(web):2;mem:3");
        let taken = r.extract(|x| reservation_role(x).is_none());
        assert_eq!(taken, res("cpus:1;mem:3"));
        assert_eq!(r, res("cpus(web):2"));
    }

    #[test]
    fn range_helpers_cover_edges() {
        let r = |b, e| Range { begin: b, end: e };
        assert_eq!(
            difference_ranges(&[r(0, u64::MAX)], &[r(0, 0), r(u64::MAX, u64::MAX)]),
            vec![r(1, u64::MAX - 1)]
        );
        assert_eq!(difference_ranges(&[r(1, 5)], &[r(0, 9)]), vec![]);
        assert_eq!(
            difference_ranges(&[r(1, 5), r(7, 9)], &[r(3, 8)]),
            vec![r(1, 2), r(9, 9)]
        );
        assert_eq!(union_ranges(&[r(1, 2)], &[r(3, 4)]), vec![r(1, 4)]);
        assert_eq!(
            union_ranges(&[r(u64::MAX, u64::MAX)], &[r(0, u64::MAX - 1)]),
            vec![r(0, u64::MAX)]
        );
        assert!(ranges_contain(&[r(1, 10)], &[r(2, 3), r(5, 10)]));
        assert!(!ranges_contain(&[r(1, 4), r(6, 10)], &[r(3, 7)]));
    }

    // -- properties ---------------------------------------------------------

    const UNIVERSE: u64 = 48;

    /// Who owns each port / set item: 0 = nobody, 1 = a, 2 = b.
    fn owners() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..3, UNIVERSE as usize)
    }

    fn identity() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
        (
            prop_oneof![Just(None), Just(Some("web")), Just(Some("web/api"))],
            prop_oneof![Just(None), Just(Some("web")), Just(Some("db"))],
        )
    }

    fn decorate(mut r: Resource, reserved: Option<&str>, allocated: Option<&str>) -> Resource {
        if let Some(role) = reserved {
            r.reservations.push(ReservationInfo {
                r#type: Some(reservation_info::Type::Static as i32),
                role: Some(role.to_owned()),
                ..Default::default()
            });
        }
        if let Some(role) = allocated {
            r.allocation_info = Some(AllocationInfo {
                role: Some(role.to_owned()),
            });
        }
        r
    }

    /// The points `who` owns, shifted into the `block`-th sub-universe so
    /// that different generated entries never overlap.
    fn ranges_owned(owner: &[u8], who: u8, block: u64) -> Vec<Range> {
        (0..UNIVERSE)
            .filter(|&p| owner[p as usize] == who)
            .map(|p| Range {
                begin: p + block * UNIVERSE,
                end: p + block * UNIVERSE,
            })
            .collect()
    }

    /// Two bags whose ranges and sets are disjoint (so `a + b - b == a`
    /// holds; for overlapping ranges it cannot), with scalars of three
    /// decimals and a mix of reservations and allocations.
    fn disjoint_pair() -> impl Strategy<Value = (Resources, Resources)> {
        let scalars = proptest::collection::vec(
            (
                prop_oneof![Just("cpus"), Just("mem"), Just("disk")],
                0u32..5_000_000,
                identity(),
                any::<bool>(),
            ),
            0..6,
        );
        let structured = proptest::collection::vec((owners(), owners(), identity()), 0..3);
        (scalars, structured).prop_map(|(scalars, structured)| {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for (name, thousandths, (reserved, allocated), to_a) in scalars {
                let r = decorate(
                    scalar(name, f64::from(thousandths) / 1000.0),
                    reserved,
                    allocated,
                );
                if to_a {
                    a.push(r);
                } else {
                    b.push(r);
                }
            }
            for (block, (ports, items, (reserved, allocated))) in structured.into_iter().enumerate()
            {
                let block = block as u64;
                for (who, out) in [(1u8, &mut a), (2u8, &mut b)] {
                    out.push(decorate(
                        Resource {
                            name: "ports".into(),
                            r#type: RANGES,
                            ranges: Some(Ranges {
                                range: ranges_owned(&ports, who, block),
                            }),
                            ..Default::default()
                        },
                        reserved,
                        allocated,
                    ));
                    out.push(decorate(
                        Resource {
                            name: "zones".into(),
                            r#type: SET,
                            set: Some(Set {
                                item: (0..UNIVERSE)
                                    .filter(|&i| items[i as usize] == who)
                                    .map(|i| format!("z{}", i + block * UNIVERSE))
                                    .collect(),
                            }),
                            ..Default::default()
                        },
                        reserved,
                        allocated,
                    ));
                }
            }
            (
                Resources::new(a).expect("generated resources are valid"),
                Resources::new(b).expect("generated resources are valid"),
            )
        })
    }

    fn any_ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
        proptest::collection::vec((0u64..200, 0u64..20), 0..12)
            .prop_map(|v| v.into_iter().map(|(b, len)| (b, b + len)).collect())
    }

    fn ports_resource(ranges: &[(u64, u64)]) -> Resources {
        Resources::new(vec![Resource {
            name: "ports".into(),
            r#type: RANGES,
            ranges: Some(Ranges {
                range: ranges
                    .iter()
                    .map(|&(begin, end)| Range { begin, end })
                    .collect(),
            }),
            ..Default::default()
        }])
        .expect("generated ranges are valid")
    }

    fn points(ranges: &[(u64, u64)]) -> std::collections::BTreeSet<u64> {
        ranges.iter().flat_map(|&(b, e)| b..=e).collect()
    }

    proptest! {
        #[test]
        fn adding_then_subtracting_is_identity((a, b) in disjoint_pair()) {
            let sum = &a + &b;
            prop_assert_eq!(&(&sum - &b), &a, "sum = {}", sum);
            prop_assert_eq!(&sum, &(&b + &a));
        }

        #[test]
        fn a_sum_contains_its_parts((a, b) in disjoint_pair()) {
            let sum = &a + &b;
            prop_assert!(sum.contains(&a));
            prop_assert!(sum.contains(&b));
            prop_assert!(sum.contains(&Resources::default()));
        }

        #[test]
        fn ranges_coalesce(x in any_ranges(), y in any_ranges()) {
            let sum = ports_resource(&x) + ports_resource(&y);
            let got = sum.ports();
            for pair in got.windows(2) {
                // Sorted, disjoint and not adjacent.
                prop_assert!(pair[0].1 + 1 < pair[1].0, "{:?}", got);
            }
            let mut want = points(&x);
            want.extend(points(&y));
            prop_assert_eq!(points(&got), want);
            prop_assert!(sum.len() <= 1);
        }

        #[test]
        fn range_difference_is_set_difference(x in any_ranges(), y in any_ranges()) {
            let left = ports_resource(&x) - ports_resource(&y);
            let want: std::collections::BTreeSet<u64> =
                points(&x).difference(&points(&y)).copied().collect();
            prop_assert_eq!(points(&left.ports()), want);
            let contains = ports_resource(&x).contains(&ports_resource(&y));
            prop_assert_eq!(contains, points(&y).is_subset(&points(&x)));
        }

        #[test]
        fn subtracting_anything_never_panics_and_stays_within((a, _) in disjoint_pair(), (b, c) in disjoint_pair()) {
            let other = &b + &c;
            let left = &a - &other;
            prop_assert!(a.contains(&left));
            prop_assert!((&left - &a).is_empty());
        }

        #[test]
        fn text_form_round_trips((a, _) in disjoint_pair()) {
            let plain = a.unallocated();
            let text = plain.to_string();
            let parsed = Resources::parse(&text).expect("Display output parses");
            // Reservation types are STATIC either way.
            prop_assert_eq!(parsed, plain, "text = {}", text);
        }
    }

    #[test]
    fn huge_resource_lists_are_refused_before_normalizing() {
        let many: Vec<Resource> = (0..MAX_ENTRIES + 1)
            .map(|i| Resource {
                name: format!("r{i}"),
                r#type: value::Type::Scalar as i32,
                scalar: Some(value::Scalar { value: 1.0 }),
                ..Default::default()
            })
            .collect();
        assert!(matches!(
            Resources::new(many),
            Err(ResourcesError::TooMany { .. })
        ));
    }
}
