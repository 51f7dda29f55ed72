//! The sandbox's resources: served from memory, with hash indexes for the lookups clients make
//! (`userName eq`, `externalId eq`, `emails.value eq`, group `displayName eq`), and written
//! through to SQLite before any answer, so a restart finds exactly what was acknowledged.

use rusqlite::{params, Connection, OptionalExtension};
use scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use scim::resource::fold;
use scim::{Dialect, Error, ResourceSchema};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

/// One stored resource. `doc` holds id, schemas, meta (without location) and attributes.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    /// Created through SCIM (false for users "invited by hand", preloaded with `--seed`).
    pub provisioned: bool,
    pub version: u64,
    pub doc: Map<String, Value>,
}

impl Entry {
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
    hidden: usize,
    external_id: HashMap<String, BTreeSet<String>>,
}

impl Table {
    fn insert(&mut self, id: &str, e: Entry) {
        if !e.provisioned {
            self.hidden += 1;
        }
        if let Some(x) = e.doc.get("externalId").and_then(Value::as_str) {
            self.external_id.entry(x.to_string()).or_default().insert(id.to_string());
        }
        self.order.insert(e.seq, id.to_string());
        self.by_id.insert(id.to_string(), e);
    }
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.by_id.remove(id)?;
        if !e.provisioned {
            self.hidden -= 1;
        }
        if let Some(x) = e.doc.get("externalId").and_then(Value::as_str) {
            remove_from(&mut self.external_id, x, id);
        }
        self.order.remove(&e.seq);
        Some(e)
    }
}

fn remove_from(index: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

#[derive(Default)]
struct State {
    users: Table,
    groups: Table,
    user_name: HashMap<String, String>,
    email: HashMap<String, BTreeSet<String>>,
    group_name: HashMap<String, BTreeSet<String>>,
    /// user id -> ids of the groups the user is a member of.
    memberships: HashMap<String, BTreeSet<String>>,
    next_seq: u64,
}

impl State {
    fn table(&self, k: Kind) -> &Table {
        match k {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }

    fn index(&mut self, kind: Kind, id: &str, e: Entry) {
        match kind {
            Kind::User => {
                if let Some(n) = e.doc.get("userName").and_then(Value::as_str) {
                    self.user_name.insert(fold(n).into_owned(), id.to_string());
                }
                for em in emails(&e.doc) {
                    self.email.entry(em).or_default().insert(id.to_string());
                }
                self.users.insert(id, e);
            }
            Kind::Group => {
                if let Some(n) = e.doc.get("displayName").and_then(Value::as_str) {
                    self.group_name.entry(fold(n).into_owned()).or_default().insert(id.to_string());
                }
                for m in member_values(&e.doc) {
                    self.memberships.entry(m.to_string()).or_default().insert(id.to_string());
                }
                self.groups.insert(id, e);
            }
        }
    }

    /// Puts `e` in place of what `id` holds (if anything). A group's memberships change by
    /// difference: a PATCH adding a few members to a large group leaves the others alone.
    fn replace(&mut self, kind: Kind, id: &str, e: Entry) -> Option<Entry> {
        if kind == Kind::User || !self.groups.by_id.contains_key(id) {
            let prev = self.unindex(kind, id);
            self.index(kind, id, e);
            return prev;
        }
        let prev = self.groups.remove(id)?;
        let name = |d: &Map<String, Value>| d.get("displayName").and_then(Value::as_str).map(|n| fold(n).into_owned());
        let (old_name, new_name) = (name(&prev.doc), name(&e.doc));
        if old_name != new_name {
            if let Some(n) = &old_name {
                remove_from(&mut self.group_name, n, id);
            }
            if let Some(n) = new_name {
                self.group_name.entry(n).or_default().insert(id.to_string());
            }
        }
        // Borrowed: only the members that come or go are copied.
        let (old, new) = (member_values(&prev.doc), member_values(&e.doc));
        let gone: Vec<String> = old.difference(&new).map(|m| m.to_string()).collect();
        let came: Vec<String> = new.difference(&old).map(|m| m.to_string()).collect();
        for m in gone {
            remove_from(&mut self.memberships, &m, id);
        }
        for m in came {
            self.memberships.entry(m).or_default().insert(id.to_string());
        }
        self.groups.insert(id, e);
        Some(prev)
    }

    /// Puts a team back as it was before members were appended to it.
    fn unjoin(&mut self, group: &str, kept: usize, had_members: bool, version: u64, meta: Value) {
        let Some(e) = self.groups.by_id.get_mut(group) else { return };
        let mut gone = vec![];
        if let Some(Value::Array(list)) = e.doc.get_mut("members") {
            gone = list.split_off(kept.min(list.len()));
        }
        if !had_members {
            e.doc.remove("members");
        }
        e.version = version;
        e.doc.insert("meta".into(), meta);
        for m in gone.iter().filter_map(|m| m.get("value").and_then(Value::as_str)) {
            remove_from(&mut self.memberships, m, group);
        }
    }

    fn unindex(&mut self, kind: Kind, id: &str) -> Option<Entry> {
        match kind {
            Kind::User => {
                let e = self.users.remove(id)?;
                if let Some(n) = e.doc.get("userName").and_then(Value::as_str) {
                    self.user_name.remove(fold(n).as_ref());
                }
                for em in emails(&e.doc) {
                    remove_from(&mut self.email, &em, id);
                }
                Some(e)
            }
            Kind::Group => {
                let e = self.groups.remove(id)?;
                if let Some(n) = e.doc.get("displayName").and_then(Value::as_str) {
                    remove_from(&mut self.group_name, fold(n).as_ref(), id);
                }
                for m in member_values(&e.doc) {
                    remove_from(&mut self.memberships, m, id);
                }
                Some(e)
            }
        }
    }
}

fn emails(doc: &Map<String, Value>) -> Vec<String> {
    match doc.get("emails") {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|i| i.get("value").and_then(Value::as_str)).map(|s| s.to_lowercase()).collect()
        }
        _ => vec![],
    }
}

/// The ids of a team's members.
fn member_values(doc: &Map<String, Value>) -> HashSet<&str> {
    match doc.get("members") {
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.get("value").and_then(Value::as_str)).collect(),
        _ => HashSet::new(),
    }
}

/// What a list call asks for, already parsed and checked.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
    /// monday.com's `scim_provisioned_only`: hide resources not created through SCIM.
    pub provisioned_only: bool,
    /// The answer leaves out users' `groups` or teams' `members` (excludedAttributes, or
    /// attributes without it): they are not built only to be dropped by the projection.
    pub without_refs: bool,
}

pub struct ListPage {
    pub total: usize,
    pub resources: Vec<Map<String, Value>>,
    /// How many resources the filter was evaluated on: an indexed lookup touches only its hits.
    pub examined: usize,
}

pub struct Store {
    state: Arc<RwLock<State>>,
    db: Option<Arc<Mutex<Connection>>>,
    /// The writer thread's queue: changes already applied in memory, waiting for their commit.
    writer: Option<mpsc::Sender<Job>>,
    pub dialect: Dialect,
    pub users: ResourceSchema,
    pub groups: ResourceSchema,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn db_error(e: rusqlite::Error) -> Error {
    tracing::error!(error = %e, "sandbox database write failed");
    Error::new(500, None, format!("the sandbox could not write its database: {e}"))
}

const SCHEMA_SQL: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -65536;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Keyed by creation order, so new resources append to the end of the table; lookups are
-- answered by the in-memory indexes, and the file only has to bring them back on start.
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    provisioned INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
";

impl Store {
    /// Opens (or creates) the database file, or keeps everything in memory when `path` is None.
    pub fn open(path: Option<&Path>, dialect: Dialect) -> Result<Store, String> {
        let mut state = State::default();
        let db = match path {
            None => None,
            Some(p) => {
                let conn = Connection::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                conn.execute_batch(SCHEMA_SQL).map_err(|e| format!("cannot prepare {}: {e}", p.display()))?;
                let stored: Option<String> = conn
                    .query_row("SELECT value FROM settings WHERE key = 'dialect'", [], |r| r.get(0))
                    .optional()
                    .map_err(|e| e.to_string())?;
                match stored {
                    Some(d) if d != dialect.as_str() => {
                        return Err(format!(
                            "{} holds a {d} sandbox; start it with --dialect {d} or use another --db",
                            p.display()
                        ))
                    }
                    Some(_) => {}
                    None => {
                        conn.execute("INSERT INTO settings (key, value) VALUES ('dialect', ?1)", [dialect.as_str()])
                            .map_err(|e| e.to_string())?;
                    }
                }
                {
                    let mut stmt = conn
                        .prepare("SELECT id, kind, seq, provisioned, version, body FROM resources ORDER BY seq")
                        .map_err(|e| e.to_string())?;
                    let rows = stmt
                        .query_map([], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, bool>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, String>(5)?,
                            ))
                        })
                        .map_err(|e| e.to_string())?;
                    for row in rows {
                        let (id, kind, seq, provisioned, version, body) = row.map_err(|e| e.to_string())?;
                        let doc: Map<String, Value> = serde_json::from_str(&body)
                            .map_err(|e| format!("{}: resource {id} is not valid JSON: {e}", p.display()))?;
                        let kind = if kind == "User" { Kind::User } else { Kind::Group };
                        state.next_seq = state.next_seq.max(seq as u64 + 1);
                        state.index(kind, &id, Entry { seq: seq as u64, provisioned, version: version as u64, doc });
                    }
                }
                Some(Arc::new(Mutex::new(conn)))
            }
        };
        let state = Arc::new(RwLock::new(state));
        let writer = db.as_ref().map(|db| {
            let (tx, rx) = mpsc::channel();
            let (db, st) = (db.clone(), state.clone());
            std::thread::Builder::new()
                .name("sandbox-writer".into())
                .spawn(move || write_loop(rx, db, st))
                .expect("spawn the database writer");
            tx
        });
        Ok(Store { state, db, writer, dialect, users: dialect.user_schema(), groups: dialect.group_schema() })
    }

    pub fn schema(&self, k: Kind) -> &ResourceSchema {
        match k {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }

    pub fn setting(&self, key: &str) -> Option<String> {
        let db = self.db.as_ref()?.lock().ok()?;
        db.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional().ok().flatten()
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), String> {
        let Some(db) = &self.db else { return Ok(()) };
        let db = db.lock().map_err(|_| "database lock poisoned".to_string())?;
        db.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Applies changes in memory and queues them for the writer thread; the caller answers
    /// only once `settle` says they are committed. Called under the state write lock, so the
    /// queue holds changes in the order they were applied.
    fn stage(&self, st: &mut State, changes: Vec<Change>) -> Result<Pending, Error> {
        let rows = match &self.writer {
            Some(_) => changes
                .iter()
                .filter_map(|(kind, id, new)| match new {
                    // Written out here rather than cloned for the writer: one buffer instead of
                    // a copy of the whole tree (a large group's member list, per PATCH).
                    Some(e) => Some(Row::Upsert {
                        kind: *kind,
                        seq: e.seq,
                        id: id.clone(),
                        provisioned: e.provisioned,
                        version: e.version,
                        body: serde_json::to_string(&e.doc).expect("JSON values serialise"),
                    }),
                    None => st.table(*kind).by_id.get(id).map(|e| Row::Delete(e.seq)),
                })
                .collect(),
            None => vec![],
        };
        let mut undo = Vec::with_capacity(changes.len());
        for (kind, id, new) in changes {
            let prev = match new {
                Some(e) => st.replace(kind, &id, e),
                None => st.unindex(kind, &id),
            };
            undo.push(Undo::Put(kind, id, prev));
        }
        self.send(rows, undo)
    }

    /// Hands rows to the writer thread (when there is a database).
    fn send(&self, rows: Vec<Row>, undo: Vec<Undo>) -> Result<Pending, Error> {
        let Some(w) = &self.writer else { return Ok(None) };
        let (done, rx) = oneshot::channel();
        w.send(Job { rows, undo, done })
            .map_err(|_| Error::new(500, None, "the sandbox database writer has stopped"))?;
        Ok(Some(rx))
    }

    /// Adds members (ids) to a team in the time of the members it adds: the PATCH most
    /// clients send (`add` on `members`, ids only) for a team of any size. The result is the
    /// general path's (tested side by side): members already in, or repeated, are not added
    /// twice; known users and teams get their type and display name; nothing new, no new
    /// version. `full` false: the answer leaves out the member list.
    pub async fn add_members(
        &self,
        id: &str,
        if_match: Option<&str>,
        ids: &[&str],
        full: bool,
    ) -> Result<Entry, Error> {
        let (entry, pending) = self.add_members_staged(id, if_match, ids, full)?;
        settle(pending).await?;
        Ok(entry)
    }

    fn add_members_staged(
        &self,
        id: &str,
        if_match: Option<&str>,
        ids: &[&str],
        full: bool,
    ) -> Result<(Entry, Pending), Error> {
        let mut st = self.state.write().expect("state lock");
        let current = st.groups.by_id.get(id).ok_or_else(|| not_found(Kind::Group, id))?;
        check_if_match(if_match, current)?;
        let answer = |e: &Entry| if full { e.clone() } else { Entry { doc: without_members(&e.doc), ..*e } };
        let mut seen = HashSet::new();
        let new: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|m| !st.memberships.get(*m).is_some_and(|gs| gs.contains(id)) && seen.insert(*m))
            .collect();
        if new.is_empty() {
            return Ok((answer(current), None));
        }
        // Resolved as the general path resolves a team's members.
        let added = new.iter().map(|m| json!({ "value": m })).collect();
        let mut holder = Map::from_iter([("members".to_string(), Value::Array(added))]);
        Self::resolve_members(&st, &mut holder)?;
        let Some(Value::Array(members)) = holder.remove("members") else { unreachable!("put there above") };
        let e = st.groups.by_id.get_mut(id).expect("looked up above");
        let had_members = e.doc.contains_key("members");
        let (version, meta) = (e.version, e.doc.get("meta").cloned().unwrap_or(Value::Null));
        let list = e.doc.entry("members").or_insert_with(|| Value::Array(vec![]));
        let Value::Array(list) = list else {
            return Err(Error::new(500, None, format!("team {id} has members that are not a list")));
        };
        let kept = list.len();
        list.extend(members);
        e.version += 1;
        let v = e.version;
        if let Some(Value::Object(m)) = e.doc.get_mut("meta") {
            m.insert("lastModified".into(), json!(now()));
            m.insert("version".into(), json!(format!("W/\"{v}\"")));
        }
        let row = Row::Upsert {
            kind: Kind::Group,
            seq: e.seq,
            id: id.to_string(),
            provisioned: e.provisioned,
            version: e.version,
            body: serde_json::to_string(&e.doc).expect("JSON values serialise"),
        };
        let out = answer(e);
        for m in &new {
            st.memberships.entry(m.to_string()).or_default().insert(id.to_string());
        }
        let undo = Undo::Joined { group: id.to_string(), kept, had_members, version, meta };
        let pending = self.send(vec![row], vec![undo])?;
        Ok((out, pending))
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<Entry> {
        let st = self.state.read().expect("state lock");
        st.table(kind).by_id.get(id).cloned()
    }

    pub fn len(&self, kind: Kind) -> usize {
        self.state.read().expect("state lock").table(kind).by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len(Kind::User) == 0 && self.len(Kind::Group) == 0
    }

    /// What a client sees: the stored document with `meta.location`, the user's read-only
    /// `groups`, and `$ref` on group members.
    /// `with_refs` false: without a user's `groups` or a team's `members` (the projection drops
    /// them).
    pub fn render(&self, kind: Kind, entry: &Entry, base: &str, with_refs: bool) -> Map<String, Value> {
        let st = self.state.read().expect("state lock");
        decorate(&st, kind, entry, base, with_refs)
    }

    fn check_unique(st: &State, kind: Kind, doc: &Map<String, Value>, own_id: Option<&str>) -> Result<(), Error> {
        if kind != Kind::User {
            return Ok(());
        }
        let Some(name) = doc.get("userName").and_then(Value::as_str) else { return Ok(()) };
        match st.user_name.get(fold(name).as_ref()) {
            Some(other) if Some(other.as_str()) != own_id => Err(Error::conflict(format!(
                "userName {name:?} is already taken by user {other} (userName is unique regardless of case)"
            ))),
            _ => Ok(()),
        }
    }

    /// Fills in the type and display name of group members that are known users or groups.
    /// An unknown id is kept as given: RFC 7644 does not ask servers to check member ids, and
    /// independent conformance suites add made-up ones.
    fn resolve_members(st: &State, doc: &mut Map<String, Value>) -> Result<(), Error> {
        let Some(Value::Array(items)) = doc.get_mut("members") else { return Ok(()) };
        for (i, m) in items.iter_mut().enumerate() {
            let Some(obj) = m.as_object_mut() else { continue };
            let Some(id) = obj.get("value").and_then(Value::as_str) else {
                return Err(Error::invalid_value(format!("members[{i}] has no value (the member's id)")));
            };
            let (ty, display) = if let Some(u) = st.users.by_id.get(id) {
                ("User", u.doc.get("displayName").or_else(|| u.doc.get("userName")))
            } else if let Some(g) = st.groups.by_id.get(id) {
                ("Group", g.doc.get("displayName"))
            } else {
                continue;
            };
            // Members already resolved (all but the newcomers of a PATCH to a large team) are
            // left as they are rather than given fresh copies of the same strings.
            if obj.get("type").and_then(Value::as_str) != Some(ty) {
                obj.insert("type".into(), json!(ty));
            }
            if let Some(d) = display {
                if obj.get("display") != Some(d) {
                    obj.insert("display".into(), d.clone());
                }
            }
        }
        Ok(())
    }

    /// Stores a new resource. `doc` is normalised; id and meta are assigned here.
    pub async fn create(&self, kind: Kind, doc: Map<String, Value>, provisioned: bool) -> Result<Entry, Error> {
        let (entry, pending) = self.create_staged(kind, doc, provisioned)?;
        settle(pending).await?;
        Ok(entry)
    }

    fn create_staged(
        &self,
        kind: Kind,
        mut doc: Map<String, Value>,
        provisioned: bool,
    ) -> Result<(Entry, Pending), Error> {
        let mut st = self.state.write().expect("state lock");
        Self::check_unique(&st, kind, &doc, None)?;
        if kind == Kind::Group {
            Self::resolve_members(&st, &mut doc)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let seq = st.next_seq;
        if kind == Kind::Group && self.dialect == Dialect::Monday {
            // monday.com's own numeric team id, which its group answers carry.
            doc.insert("internalId".into(), json!((10_000_000 + seq).to_string()));
        }
        let t = now();
        doc.insert("id".into(), json!(id));
        doc.insert(
            "meta".into(),
            json!({"resourceType": kind.as_str(), "created": t, "lastModified": t, "version": "W/\"1\""}),
        );
        let entry = Entry { seq, provisioned, version: 1, doc };
        let pending = self.stage(&mut st, vec![(kind, id, Some(entry.clone()))])?;
        st.next_seq += 1;
        Ok((entry, pending))
    }

    /// Replaces a resource by `update(current) -> new attributes`, under the write lock so the
    /// check of If-Match and the write see the same version.
    pub async fn update(
        &self,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        update: impl Fn(&Map<String, Value>) -> Result<Map<String, Value>, Error>,
    ) -> Result<Entry, Error> {
        let (entry, pending) = self.update_staged(kind, id, if_match, update)?;
        settle(pending).await?;
        Ok(entry)
    }

    fn update_staged(
        &self,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        update: impl Fn(&Map<String, Value>) -> Result<Map<String, Value>, Error>,
    ) -> Result<(Entry, Pending), Error> {
        // The change is worked out on a copy under the readers' lock, so a PATCH of many
        // operations or on a large team never stalls reads; it is committed under the
        // writer's lock if the resource did not change meanwhile (else worked out again, and
        // after a few tries under the writer's lock).
        let mut worked: Option<(u64, Map<String, Value>)> = None;
        for _ in 0..3 {
            let (version, copy) = {
                let st = self.state.read().expect("state lock");
                let current = st.table(kind).by_id.get(id).ok_or_else(|| not_found(kind, id))?;
                check_if_match(if_match, current)?;
                (current.version, current.doc.clone())
            };
            let doc = update(&copy)?;
            let st = self.state.read().expect("state lock");
            if st.table(kind).by_id.get(id).is_some_and(|c| c.version == version) {
                worked = Some((version, doc));
                break;
            }
        }
        let mut st = self.state.write().expect("state lock");
        let current = st.table(kind).by_id.get(id).ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, current)?;
        let mut doc = match worked {
            Some((version, doc)) if version == current.version => doc,
            _ => update(&current.doc)?,
        };
        Self::check_unique(&st, kind, &doc, Some(id))?;
        if kind == Kind::Group {
            Self::resolve_members(&st, &mut doc)?;
        }
        for key in ["id", "meta", "internalId"] {
            if let Some(v) = current.doc.get(key) {
                doc.insert(key.into(), v.clone());
            }
        }
        if doc == current.doc {
            return Ok((current.clone(), None));
        }
        let version = current.version + 1;
        let meta = doc.get_mut("meta").and_then(Value::as_object_mut).expect("stored resources have meta");
        meta.insert("lastModified".into(), json!(now()));
        meta.insert("version".into(), json!(format!("W/\"{version}\"")));
        let entry = Entry { seq: current.seq, provisioned: current.provisioned, version, doc };
        // A user's new display name shows in the groups that list them.
        let mut touched_groups = Vec::new();
        if kind == Kind::User && entry.doc.get("displayName") != current.doc.get("displayName") {
            for g in st.memberships.get(id).into_iter().flatten() {
                if let Some(ge) = st.groups.by_id.get(g) {
                    let mut ge = ge.clone();
                    if let Some(Value::Array(ms)) = ge.doc.get_mut("members") {
                        for m in ms.iter_mut().filter(|m| m.get("value").and_then(Value::as_str) == Some(id)) {
                            if let (Some(o), Some(d)) = (m.as_object_mut(), entry.doc.get("displayName")) {
                                o.insert("display".into(), d.clone());
                            }
                        }
                    }
                    touched_groups.push((g.clone(), ge));
                }
            }
        }
        let mut changes = vec![(kind, id.to_string(), Some(entry.clone()))];
        changes.extend(touched_groups.into_iter().map(|(g, e)| (Kind::Group, g, Some(e))));
        let pending = self.stage(&mut st, changes)?;
        Ok((entry, pending))
    }

    /// Deletes a resource; a deleted user leaves every group it was in.
    pub async fn delete(&self, kind: Kind, id: &str, if_match: Option<&str>) -> Result<(), Error> {
        let pending = self.delete_staged(kind, id, if_match)?;
        settle(pending).await
    }

    fn delete_staged(&self, kind: Kind, id: &str, if_match: Option<&str>) -> Result<Pending, Error> {
        let mut st = self.state.write().expect("state lock");
        let current = st.table(kind).by_id.get(id).ok_or_else(|| not_found(kind, id))?;
        check_if_match(if_match, current)?;
        let mut changed = Vec::new();
        // The groups that list the deleted resource as a member (users, or nested groups).
        let group_ids: Vec<String> = st.memberships.get(id).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        for g in group_ids {
            if let Some(ge) = st.groups.by_id.get(&g) {
                let mut ge = ge.clone();
                if let Some(Value::Array(ms)) = ge.doc.get_mut("members") {
                    ms.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
                    if ms.is_empty() {
                        ge.doc.remove("members");
                    }
                }
                ge.version += 1;
                if let Some(meta) = ge.doc.get_mut("meta").and_then(Value::as_object_mut) {
                    meta.insert("lastModified".into(), json!(now()));
                    meta.insert("version".into(), json!(format!("W/\"{}\"", ge.version)));
                }
                changed.push((g, ge));
            }
        }
        let mut changes = vec![(kind, id.to_string(), None)];
        changes.extend(changed.into_iter().map(|(g, e)| (Kind::Group, g, Some(e))));
        self.stage(&mut st, changes)
    }

    /// Ids a filter can be answered from by index, or None when it needs a scan.
    fn indexed(&self, st: &State, kind: Kind, f: &Filter) -> Option<BTreeSet<String>> {
        let eq_str = |p: &AttrPath, op: &CompareOp, v: &CompValue| -> Option<(String, String)> {
            match (op, v) {
                (CompareOp::Eq, CompValue::Str(s)) => {
                    let leaf = match &p.sub {
                        Some(s) => format!("{}.{}", p.name, s),
                        None => p.name.clone(),
                    };
                    let core = p.uri.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(&self.schema(kind).core.id));
                    core.then(|| (leaf.to_ascii_lowercase(), s.clone()))
                }
                _ => None,
            }
        };
        match f {
            Filter::Compare(p, op, v) => {
                let (leaf, s) = eq_str(p, op, v)?;
                let one = |x: Option<&String>| x.into_iter().cloned().collect::<BTreeSet<_>>();
                match (kind, leaf.as_str()) {
                    (Kind::User, "username") => Some(one(st.user_name.get(fold(&s).as_ref()))),
                    (Kind::User, "emails" | "emails.value") => {
                        Some(st.email.get(&s.to_lowercase()).cloned().unwrap_or_default())
                    }
                    (_, "externalid") => Some(st.table(kind).external_id.get(&s).cloned().unwrap_or_default()),
                    (Kind::Group, "displayname") => {
                        Some(st.group_name.get(fold(&s).as_ref()).cloned().unwrap_or_default())
                    }
                    _ => None,
                }
            }
            Filter::ValuePath(p, inner)
                if kind == Kind::User && p.name.eq_ignore_ascii_case("emails") && p.uri.is_none() =>
            {
                let mut found = None;
                find_value_eq(inner, &mut found);
                found.map(|s| st.email.get(&s.to_lowercase()).cloned().unwrap_or_default())
            }
            Filter::And(a, b) => self.indexed(st, kind, a).or_else(|| self.indexed(st, kind, b)),
            Filter::Or(a, b) => {
                let mut x = self.indexed(st, kind, a)?;
                x.extend(self.indexed(st, kind, b)?);
                Some(x)
            }
            _ => None,
        }
    }

    /// Filters, sorts and pages; `render` turns a stored entry into what the client gets.
    pub fn list(
        &self,
        kind: Kind,
        q: &ListQuery,
        base: &str,
        mut project: impl FnMut(Map<String, Value>) -> Map<String, Value>,
    ) -> ListPage {
        let st = self.state.read().expect("state lock");
        let mut render = |e: &Entry| project(decorate(&st, kind, e, base, !q.without_refs));
        let table = st.table(kind);
        let schema = self.schema(kind);
        let visible = |e: &Entry| !q.provisioned_only || e.provisioned;
        let skip = q.start_index.saturating_sub(1);
        // The common paging call (no filter, no sort) walks only the page it returns.
        if q.filter.is_none() && q.sort_by.is_none() && (table.hidden == 0 || !q.provisioned_only) {
            let resources: Vec<_> = table
                .order
                .values()
                .skip(skip)
                .take(q.count)
                .filter_map(|id| table.by_id.get(id))
                .map(&mut render)
                .collect();
            return ListPage { total: table.by_id.len(), examined: resources.len(), resources };
        }
        let mut examined = 0;
        let mut hits: Vec<&Entry> = Vec::new();
        match q.filter.as_ref().and_then(|f| self.indexed(&st, kind, f)) {
            Some(ids) => {
                let mut es: Vec<&Entry> = ids.iter().filter_map(|id| table.by_id.get(id)).collect();
                es.sort_by_key(|e| e.seq);
                for e in es {
                    examined += 1;
                    if visible(e) && q.filter.as_ref().is_none_or(|f| schema.matches(f, &e.doc)) {
                        hits.push(e);
                    }
                }
            }
            None => {
                for id in table.order.values() {
                    let Some(e) = table.by_id.get(id) else { continue };
                    examined += 1;
                    if visible(e) && q.filter.as_ref().is_none_or(|f| schema.matches(f, &e.doc)) {
                        hits.push(e);
                    }
                }
            }
        }
        if let Some(path) = &q.sort_by {
            hits.sort_by(|a, b| {
                let o = schema.compare_by(path, &a.doc, &b.doc);
                if q.descending {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let total = hits.len();
        let resources = hits.into_iter().skip(skip).take(q.count).map(render).collect();
        ListPage { total, resources, examined }
    }
}

/// A copy of a team without its member list (which may be large).
fn without_members(doc: &Map<String, Value>) -> Map<String, Value> {
    doc.iter().filter(|(k, _)| k.as_str() != "members").map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn decorate(st: &State, kind: Kind, entry: &Entry, base: &str, with_refs: bool) -> Map<String, Value> {
    // A large team's member list is not copied when the answer leaves it out.
    let mut doc = if kind == Kind::Group && !with_refs { without_members(&entry.doc) } else { entry.doc.clone() };
    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(meta) = doc.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("location".into(), json!(format!("{base}/{}/{id}", kind.endpoint())));
    }
    match kind {
        Kind::User | Kind::Group if !with_refs => {}
        Kind::User => {
            if let Some(gs) = st.memberships.get(&id) {
                let groups: Vec<Value> = gs
                    .iter()
                    .filter_map(|g| st.groups.by_id.get(g).map(|e| (g, e)))
                    .map(|(g, e)| {
                        json!({"value": g, "display": e.doc.get("displayName"), "type": "direct", "$ref": format!("{base}/Groups/{g}")})
                    })
                    .collect();
                if !groups.is_empty() {
                    doc.insert("groups".into(), Value::Array(groups));
                }
            }
        }
        Kind::Group => {
            if let Some(Value::Array(ms)) = doc.get_mut("members") {
                for m in ms.iter_mut().filter_map(Value::as_object_mut) {
                    let ep = if m.get("type").and_then(Value::as_str) == Some("Group") { "Groups" } else { "Users" };
                    if let Some(v) = m.get("value").and_then(Value::as_str) {
                        let r = format!("{base}/{ep}/{v}");
                        m.insert("$ref".into(), json!(r));
                    }
                }
            }
        }
    }
    doc
}

/// One resource's new state (None: deleted).
type Change = (Kind, String, Option<Entry>);
/// The answer to wait for before replying, when there is a database.
type Pending = Option<oneshot::Receiver<Result<(), Error>>>;

async fn settle(p: Pending) -> Result<(), Error> {
    match p {
        None => Ok(()),
        Some(rx) => rx.await.unwrap_or_else(|_| Err(Error::new(500, None, "the sandbox database writer has stopped"))),
    }
}

/// A change for the writer thread (the body already written out when it was staged).
enum Row {
    Upsert { kind: Kind, seq: u64, id: String, provisioned: bool, version: u64, body: String },
    Delete(u64),
}

struct Job {
    rows: Vec<Row>,
    /// Previous states, to put back if the commit fails.
    undo: Vec<Undo>,
    done: oneshot::Sender<Result<(), Error>>,
}

/// How to put a staged change back.
enum Undo {
    /// The resource as it was (None: it did not exist).
    Put(Kind, String, Option<Entry>),
    /// Members appended to a team: drop them again and restore its version.
    Joined { group: String, kept: usize, had_members: bool, version: u64, meta: Value },
}

/// Group commit: everything queued while one transaction commits goes into the next, so a
/// burst of writes costs one commit instead of one each. A failed commit puts back, newest
/// first, every change not yet committed, and fails their requests: what was answered is
/// exactly what is on disk.
fn write_loop(rx: mpsc::Receiver<Job>, db: Arc<Mutex<Connection>>, state: Arc<RwLock<State>>) {
    const MAX_BATCH: usize = 4096;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = match db.lock() {
            Ok(mut conn) => write_rows(&mut conn, batch.iter().flat_map(|j| j.rows.iter())),
            Err(_) => Err(Error::new(500, None, "database lock poisoned")),
        };
        if let Err(e) = result {
            let mut st = state.write().expect("state lock");
            // Everything still queued was applied after this batch: undo it too.
            while let Ok(j) = rx.try_recv() {
                batch.push(j);
            }
            for job in batch.iter_mut().rev() {
                for undo in job.undo.drain(..).rev() {
                    match undo {
                        Undo::Put(kind, id, prev) => {
                            st.unindex(kind, &id);
                            if let Some(p) = prev {
                                st.index(kind, &id, p);
                            }
                        }
                        Undo::Joined { group, kept, had_members, version, meta } => {
                            st.unjoin(&group, kept, had_members, version, meta)
                        }
                    }
                }
            }
            drop(st);
            for job in batch {
                let _ = job.done.send(Err(e.clone()));
            }
            continue;
        }
        for job in batch {
            let _ = job.done.send(Ok(()));
        }
    }
}

fn write_rows<'a>(conn: &mut Connection, rows: impl Iterator<Item = &'a Row>) -> Result<(), Error> {
    let tx = conn.transaction().map_err(db_error)?;
    for row in rows {
        match row {
            Row::Delete(seq) => {
                tx.prepare_cached("DELETE FROM resources WHERE seq = ?1")
                    .and_then(|mut st| st.execute([*seq as i64]))
                    .map_err(db_error)?;
            }
            Row::Upsert { kind, seq, id, provisioned, version, body } => {
                tx.prepare_cached(
                    "INSERT INTO resources (seq, id, kind, provisioned, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (seq) DO UPDATE SET version = excluded.version, body = excluded.body",
                )
                .and_then(|mut st| {
                    st.execute(params![*seq as i64, id, kind.as_str(), provisioned, *version as i64, body])
                })
                .map_err(db_error)?;
            }
        }
    }
    tx.commit().map_err(db_error)
}

fn find_value_eq(f: &Filter, out: &mut Option<String>) {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::Str(s)) if p.name.eq_ignore_ascii_case("value") => {
            *out = Some(s.clone())
        }
        Filter::And(a, b) => {
            find_value_eq(a, out);
            if out.is_none() {
                find_value_eq(b, out);
            }
        }
        _ => {}
    }
}

fn not_found(kind: Kind, id: &str) -> Error {
    Error::not_found(format!("{} {id:?} not found", kind.as_str()))
}

/// RFC 7644 §3.14 with RFC 7232 weak comparison: `*` or any listed tag that names the version.
fn check_if_match(if_match: Option<&str>, e: &Entry) -> Result<(), Error> {
    let Some(h) = if_match else { return Ok(()) };
    if etag_matches(h, &e.etag()) {
        Ok(())
    } else {
        Err(Error::new(412, None, format!("If-Match {h} does not match the current version {}", e.etag())))
    }
}

pub fn etag_matches(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").trim_matches('"').to_string();
    header.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(store: &Store, name: &str, extra: Value) -> Map<String, Value> {
        let mut body = json!({"schemas": [scim::schema::USER], "userName": name, "displayName": name,
            "emails": [{"value": name.to_lowercase(), "type": "work"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        store.users.normalize(&body).unwrap()
    }

    fn query(f: &str) -> ListQuery {
        ListQuery { filter: Some(Filter::parse(f).unwrap()), start_index: 1, count: 100, ..ListQuery::default() }
    }

    #[tokio::test]
    async fn indexed_lookups_touch_only_their_hits() {
        let store = Store::open(None, Dialect::Generic).unwrap();
        for i in 0..500 {
            let doc =
                user(&store, &format!("User{i}@Acme.example"), json!({"externalId": format!("E{i}"), "title": "t"}));
            store.create(Kind::User, doc, true).await.unwrap();
        }
        for f in [
            r#"userName eq "user7@acme.example""#,
            r#"externalId eq "E7""#,
            r#"emails.value eq "USER7@acme.example""#,
            r#"emails eq "user7@acme.example""#,
            r#"emails[type eq "work"].value eq "user7@acme.example""#,
            r#"userName eq "user7@acme.example" and title eq "t""#,
        ] {
            let page = store.list(Kind::User, &query(f), "", |m| m);
            assert_eq!((page.total, page.examined), (1, 1), "{f}");
            assert_eq!(page.resources[0]["externalId"], json!("E7"), "{f}");
        }
        let page =
            store.list(Kind::User, &query(r#"userName eq "user1@acme.example" or externalId eq "E2""#), "", |m| m);
        assert_eq!((page.total, page.examined), (2, 2));
        let page = store.list(Kind::User, &query(r#"title eq "t""#), "", |m| m);
        assert_eq!((page.total, page.examined), (500, 500), "no index on title: a scan");
        let page = store.list(Kind::User, &query(r#"externalId eq "e7""#), "", |m| m);
        assert_eq!(page.total, 0, "externalId is case-exact");
    }

    /// A store on a new database file of its own (`tag` keeps tests apart).
    fn fresh_file_store(tag: u32) -> (std::path::PathBuf, std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("sandbox-store-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        let _ = std::fs::remove_file(&path);
        let store = Store::open(Some(&path), Dialect::Monday).unwrap();
        (dir, path, store)
    }

    /// Another connection that makes the disk refuse any write mentioning "poison"; dropping
    /// its trigger (`DROP TRIGGER poison`) heals it.
    fn poison(path: &Path) -> Connection {
        let side = Connection::open(path).unwrap();
        side.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON resources WHEN NEW.body LIKE '%poison%'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
        side
    }

    #[tokio::test]
    async fn a_failed_commit_undoes_the_change_and_nothing_half_written_remains() {
        let (dir, path, store) = fresh_file_store(line!());
        let kept = store.create(Kind::User, user(&store, "kept@acme.example", json!({})), true).await.unwrap();
        let id = kept.doc["id"].as_str().unwrap().to_string();
        // Another connection makes the disk refuse anything that mentions "poison".
        let side = poison(&path);
        let err = store.create(Kind::User, user(&store, "poison@acme.example", json!({})), true).await.unwrap_err();
        assert_eq!(err.status, 500);
        assert!(err.detail.contains("disk on fire"), "{}", err.detail);
        assert_eq!(store.list(Kind::User, &query(r#"userName eq "poison@acme.example""#), "", |m| m).total, 0);
        let err = store
            .update(Kind::User, &id, None, |d| {
                let mut d = d.clone();
                d.insert("displayName".into(), json!("poison"));
                Ok(d)
            })
            .await
            .unwrap_err();
        assert_eq!(err.status, 500);
        assert_eq!(store.get(Kind::User, &id).unwrap().doc, kept.doc, "the old version is back");
        assert_eq!(
            store.list(Kind::User, &ListQuery { count: 10, start_index: 1, ..Default::default() }, "", |m| m).total,
            1
        );
        side.execute_batch("DROP TRIGGER poison").unwrap();
        let later = store.create(Kind::User, user(&store, "later@acme.example", json!({})), true).await.unwrap();
        drop(store);
        // What is on disk is exactly what was acknowledged.
        let reopened = Store::open(Some(&path), Dialect::Monday).unwrap();
        assert_eq!(reopened.len(Kind::User), 2);
        assert_eq!(reopened.get(Kind::User, &id).unwrap().doc, kept.doc);
        assert!(reopened.get(Kind::User, later.doc["id"].as_str().unwrap()).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_commit_takes_added_members_back_out() {
        let (dir, path, store) = fresh_file_store(line!());
        let u = store.create(Kind::User, user(&store, "kept@acme.example", json!({})), true).await.unwrap();
        let uid = u.doc["id"].as_str().unwrap().to_string();
        let empty = Map::from_iter([("displayName".to_string(), json!("Empty"))]);
        let empty = store.create(Kind::Group, empty, true).await.unwrap();
        let eid = empty.doc["id"].as_str().unwrap().to_string();
        let team = Map::from_iter([
            ("displayName".to_string(), json!("Team")),
            ("members".to_string(), json!([{"value": uid}])),
        ]);
        let team = store.create(Kind::Group, team, true).await.unwrap();
        let gid = team.doc["id"].as_str().unwrap().to_string();
        let side = poison(&path);
        for (id, before) in [(&gid, &team), (&eid, &empty)] {
            let err = store.add_members(id, None, &["poison-1", "poison-2"], true).await.unwrap_err();
            assert_eq!(err.status, 500);
            assert_eq!(&store.get(Kind::Group, id).unwrap().doc, &before.doc, "the team as it was");
            assert_eq!(store.get(Kind::Group, id).unwrap().version, 1);
        }
        // The memberships index forgot them too: added again, they count as new.
        side.execute_batch("DROP TRIGGER poison").unwrap();
        let e = store.add_members(&gid, None, &["poison-1", &uid], false).await.unwrap();
        assert_eq!(e.version, 2);
        assert!(e.doc.get("members").is_none(), "left out when the answer does not want them");
        let members = store.get(Kind::Group, &gid).unwrap().doc["members"].clone();
        assert_eq!(
            members,
            json!([{"value": uid, "type": "User", "display": "kept@acme.example"}, {"value": "poison-1"}])
        );
        drop(store);
        let reopened = Store::open(Some(&path), Dialect::Monday).unwrap();
        assert_eq!(reopened.get(Kind::Group, &gid).unwrap().doc["members"], members);
        assert!(reopened.get(Kind::Group, &eid).unwrap().doc.get("members").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_database_of_another_dialect_is_refused() {
        let dir = std::env::temp_dir().join(format!("sandbox-dialect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.db");
        let _ = std::fs::remove_file(&path);
        drop(Store::open(Some(&path), Dialect::Monday).unwrap());
        let err = Store::open(Some(&path), Dialect::Generic).err().unwrap();
        assert!(err.contains("--dialect monday"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
