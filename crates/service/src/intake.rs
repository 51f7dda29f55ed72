//! HR intake: an accepted load (a file or a push) is compared with the stored snapshot, and the
//! snapshot, the events, the quarantined rows and the load itself are written in one
//! transaction. Files are archived under their SHA-256 first, so any load can be replayed.

use crate::error::{Error, Result};
use hr::{Event, EventKind, LifecycleConfig, LoadReport, Status, Worker, WorkerId};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use store::{EventRecord, EventState, LoadRecord, LoadWrite, SnapshotRow, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadKind {
    /// The whole population: workers absent from it are handled by the missing policy.
    Full,
    /// Only changed workers: absence means nothing.
    Delta,
}

/// What to do with a worker a full load no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Report it once (an event in state `reported`); the account is left alone.
    Report,
    /// Treat it as terminated now.
    Terminate,
    /// Say nothing.
    Ignore,
}

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub lifecycle: LifecycleConfig,
    pub missing: MissingPolicy,
}

impl IntakeConfig {
    /// The saved configuration's `[hr]` lifecycle settings.
    pub fn from_settings(hr: &rules::HrSettings) -> Result<IntakeConfig> {
        Ok(IntakeConfig {
            lifecycle: hr.lifecycle().map_err(Error::input)?,
            missing: match hr.missing {
                rules::MissingSetting::Report => MissingPolicy::Report,
                rules::MissingSetting::Terminate => MissingPolicy::Terminate,
                rules::MissingSetting::Ignore => MissingPolicy::Ignore,
            },
        })
    }
}

/// Everything that says how HR data is taken: how files read, how loads become events, and
/// how far a full load's population may fall. Built from `[hr]`, with a command's overrides.
#[derive(Debug, Clone)]
pub struct Intake {
    pub def: hr::HeaderDefinition,
    pub cfg: IntakeConfig,
    pub max_drop: f64,
    /// What each load's per-field summary checks values against.
    pub summary: rules::summary::SummaryRules,
}

impl Intake {
    pub fn from_settings(hr: &rules::HrSettings) -> Result<Intake> {
        Ok(Intake {
            def: hr.header_definition().map_err(|e| Error::input(e.join("; ")))?,
            cfg: IntakeConfig::from_settings(hr)?,
            max_drop: hr.max_population_drop,
            summary: rules::summary::SummaryRules::plain(&hr.custom_fields),
        })
    }

    /// As `from_settings`, with the roles and team rules whose conditions a load's values are
    /// checked against.
    pub fn for_config(config: &rules::Config) -> Result<Intake> {
        Ok(Intake { summary: rules::summary::SummaryRules::of(config), ..Intake::from_settings(&config.hr)? })
    }
}

/// A file (or body) as delivered: by a command, the inbox or a pull.
pub struct Delivery {
    /// How the history names it: the file's path, `inbox:NAME`, the pulled URL.
    pub source: String,
    pub bytes: Vec<u8>,
    pub json: bool,
    pub kind: LoadKind,
    /// Take a full load whose population fell too far: its exact population.
    pub confirm_population: Option<usize>,
    /// Loads whose pending events this one cancels (`--back-to`).
    pub supersede_loads: Vec<String>,
    /// The person who uploaded it, when a person did (`user:NAME`): maker-checker refuses
    /// them the reviews it opens.
    pub uploaded_by: Option<String>,
}

/// What a load carries beside its rows: pushed event ids (taken once), loads it cancels, and
/// who uploaded it.
#[derive(Debug, Clone, Default)]
pub struct LoadExtras {
    pub push_ids: Vec<String>,
    pub supersede_loads: Vec<String>,
    pub uploaded_by: Option<String>,
    /// The file as delivered: a worker whose id it still names is never taken as missing.
    pub bytes: Option<Vec<u8>>,
    /// The accepted workers' values, field by field, kept with the load.
    pub fields: Option<rules::summary::Summary>,
}

/// What became of a delivery.
pub enum Taken {
    Loaded {
        outcome: Outcome,
        report: Box<LoadReport>,
    },
    /// Refused whole (unreadable, or its population fell too far): recorded in the history
    /// with the reason, nothing else written.
    Rejected {
        load_id: String,
        reason: String,
        rejected: Option<hr::FileRejected>,
    },
}

/// Reads a delivery by the definition. A delta may carry only what changed for workers the
/// snapshot has: their stored records fill the rest.
pub async fn read(
    store: &Store,
    def: &hr::HeaderDefinition,
    d: &Delivery,
) -> Result<Result<LoadReport, hr::FileRejected>, StoreError> {
    let parse = |known: Option<&HashMap<WorkerId, Worker>>| {
        if d.json {
            hr::parse_json_with(&d.source, &d.bytes, def, known)
        } else {
            hr::parse_csv_with(&d.source, &d.bytes, def, known)
        }
    };
    if d.kind == LoadKind::Full {
        return Ok(parse(None));
    }
    // First as if every worker were new, to learn who the rows are; then again merged onto
    // the records of those tenure knows.
    let first = match parse(Some(&HashMap::new())) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let ids: Vec<String> = first
        .accepted
        .iter()
        .map(|w| w.id.to_string())
        .chain(first.quarantined.iter().filter_map(|q| q.worker_id.as_ref().map(|w| w.to_string())))
        .collect();
    let known: HashMap<WorkerId, Worker> =
        store.snapshot_of(&ids).await?.iter().filter_map(|r| decode(r).ok()).map(|w| (w.id.clone(), w)).collect();
    if known.is_empty() {
        return Ok(Ok(first));
    }
    Ok(parse(Some(&known)))
}

/// An HR file a person uploads (the API, the console): its bytes and how to take it.
pub struct Upload {
    pub bytes: Vec<u8>,
    /// JSON rather than CSV.
    pub json: bool,
    pub kind: LoadKind,
    pub confirm_population: Option<usize>,
    /// As the audit names the uploader (`user:NAME`, `token:ID (NAME)`).
    pub actor: String,
    /// The person behind it, the proposer of the changes it brings (maker-checker).
    pub person: String,
    /// What the history calls where it came from (the file's name, when the console knows it).
    pub file_name: Option<String>,
}

/// Takes an uploaded HR file under the configuration in force: the same header check,
/// quarantine and lifecycle events as `tenure hr load`.
pub async fn upload(store: &Store, data_dir: &Path, u: Upload) -> Result<Taken> {
    let rules = crate::config::current(store).await?;
    let intake = Intake::for_config(&rules.config)?;
    let source = match &u.file_name {
        Some(f) => format!("{f} (upload by {})", u.actor),
        None => format!("api upload by {}", u.actor),
    };
    let d = Delivery {
        source,
        bytes: u.bytes,
        json: u.json,
        kind: u.kind,
        confirm_population: u.confirm_population,
        supersede_loads: vec![],
        uploaded_by: Some(u.person),
    };
    take(store, data_dir, &intake, d, Timestamp::now()).await
}

/// Takes a delivery: reads it, checks a full load's population, archives it and applies it.
/// A refusal is recorded in the history with its reason.
pub async fn take(store: &Store, data_dir: &Path, intake: &Intake, d: Delivery, now: Timestamp) -> Result<Taken> {
    let checksum = checksum(&d.bytes);
    let report = match read(store, &intake.def, &d).await? {
        Ok(r) => r,
        Err(rejected) => {
            let load_id =
                record_rejected(store, &d.source, &checksum, d.kind, &rejected.reason, d.uploaded_by.as_deref())
                    .await?;
            return Ok(Taken::Rejected { load_id, reason: rejected.to_string(), rejected: Some(rejected) });
        }
    };
    if d.kind == LoadKind::Full {
        if let Err(why) = population_check(store, &report, intake.max_drop, d.confirm_population).await? {
            let load_id = record_rejected(store, &d.source, &checksum, d.kind, &why, d.uploaded_by.as_deref()).await?;
            return Ok(Taken::Rejected { load_id, reason: why, rejected: None });
        }
    }
    // The very bytes that were checked, so the archive always matches its checksum.
    keep(store, data_dir, &report.checksum, &d.bytes).await?;
    let extras = LoadExtras {
        push_ids: vec![],
        supersede_loads: d.supersede_loads,
        uploaded_by: d.uploaded_by,
        bytes: Some(d.bytes),
        fields: Some(summarize(&report.accepted, &intake.summary, now)),
    };
    let outcome = apply_with(store, &report, d.kind, &intake.cfg, now, extras).await?;
    Ok(Taken::Loaded { outcome, report: Box::new(report) })
}

/// A load's values field by field, roles decided on the day of `now` (UTC).
pub fn summarize(workers: &[Worker], rules: &rules::summary::SummaryRules, now: Timestamp) -> rules::summary::Summary {
    rules::summary::summarize(workers, rules, now.to_zoned(jiff::tz::TimeZone::UTC).date())
}

/// Fewer workers than this missing from a full load never trip the population check.
const MIN_DROP: usize = 3;

/// A full load that is empty, or whose population falls by more than `max_drop` against the
/// last snapshot, is refused with the numbers unless the exact population is confirmed.
pub async fn population_check(
    store: &Store,
    report: &LoadReport,
    max_drop: f64,
    confirm: Option<usize>,
) -> Result<Result<(), String>> {
    let before = store.population().await? as usize;
    let now = report.accepted.len() + report.held().len();
    if confirm == Some(now) {
        return Ok(Ok(()));
    }
    if now == 0 {
        return Ok(Err(format!(
            "refused: {} is a full load with no workers (the last snapshot has {before}); nothing was loaded. If the \
             population really is empty, load it with --confirm-population 0",
            report.file
        )));
    }
    let floor = (before as f64 * (1.0 - max_drop)).ceil() as usize;
    // As the deprovision guard: a drop of one or two in a small team is ordinary.
    if before > 0 && now < floor && before - now >= MIN_DROP {
        return Ok(Err(format!(
            "refused: {} has {now} workers where the last snapshot has {before}: {:.0}% fewer, more than the {:.0}% a \
             full load may drop ([hr] max_population_drop, --max-drop). Nothing was loaded. If this is right, load it \
             with --confirm-population {now}",
            report.file,
            100.0 * (before - now) as f64 / before as f64,
            100.0 * max_drop
        )));
    }
    Ok(Ok(()))
}

/// An event as listed: the stored row with its detail.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub state: EventState,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub load_id: String,
    pub kind: LoadKind,
    pub source: String,
    pub checksum: String,
    pub rows: usize,
    pub accepted: usize,
    pub quarantined: usize,
    /// Accepted workers whose record did not change.
    pub unchanged: usize,
    /// Workers absent from a full load but held back because their row was quarantined.
    pub held: Vec<WorkerId>,
    /// Workers whose id is on several quarantined rows that all say the worker left: the
    /// termination was taken from them (the rest of the record stays as it was).
    pub terminations_taken: Vec<WorkerId>,
    /// Workers absent from the rows of a full load whose id the file still names (a row lost
    /// to damage): held, never taken as missing. Also in `held`.
    pub named: Vec<WorkerId>,
    pub events: Vec<Listed>,
    /// When this very file (same checksum) was loaded before, if it was.
    pub loaded_before: Option<String>,
    /// The accepted workers' values, field by field, with the values no rule names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<rules::summary::Summary>,
}

impl Outcome {
    /// Events by kind, for a one-line summary.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for e in &self.events {
            *m.entry(e.event.kind.as_str()).or_default() += 1;
        }
        m
    }
    pub fn waiting(&self, now: Timestamp) -> usize {
        self.events.iter().filter(|e| e.state == EventState::Pending && !e.event.is_due(now)).count()
    }
}

/// Whether a file's name says JSON or JSON Lines (else it is read as CSV).
pub fn json_by_name(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "json" | "jsonl" | "ndjson"))
}

/// An earlier accepted full load, read again from its archive, as a new load that cancels
/// what every load after it left pending (`json`: read as JSON, else by its name).
pub async fn back_to(
    store: &Store,
    data_dir: &Path,
    id: &str,
    json: Option<bool>,
    confirm_population: Option<usize>,
) -> Result<Delivery> {
    let loads = store.loads().await?;
    let at = loads
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(|| Error::not_found(format!("no load {id} (see tenure hr loads)")))?;
    let l = &loads[at];
    if l.outcome != "accepted" || l.kind != "full" {
        return Err(Error::refused(format!(
            "load {id} is a {} {} load: only an accepted full load can be taken again",
            l.outcome, l.kind
        )));
    }
    let bytes = kept(store, data_dir, &l.checksum).await?.ok_or_else(|| {
        Error::refused(format!(
            "the archived copy of load {id} is not kept ({})",
            kept_where(store, data_dir, &l.checksum)
        ))
    })?;
    let later: Vec<String> = loads[at + 1..].iter().filter(|x| x.outcome == "accepted").map(|x| x.id.clone()).collect();
    Ok(Delivery {
        source: format!("back to load {id} ({})", l.source),
        json: json.unwrap_or_else(|| json_by_name(Path::new(&l.source))),
        bytes,
        kind: LoadKind::Full,
        confirm_population,
        supersede_loads: later,
        uploaded_by: None,
    })
}

/// Where archived files go: `<data dir>/hr-archive/<sha256>`.
pub fn archive_path(data_dir: &Path, checksum: &str) -> PathBuf {
    data_dir.join("hr-archive").join(checksum)
}

/// Keeps HR bytes as received under their checksum: in the store on PostgreSQL, where every
/// node reads what any node took; in the data folder beside a SQLite store (one node).
pub async fn keep(store: &Store, data_dir: &Path, checksum: &str, bytes: &[u8]) -> Result<()> {
    match store.backend() {
        store::Backend::Postgres => Ok(store.archive_put(checksum, bytes).await?),
        store::Backend::Sqlite => archive(data_dir, checksum, bytes).map(|_| ()),
    }
}

/// HR bytes kept under this checksum, when kept: from the store, else from the data folder
/// (a SQLite store's, or a PostgreSQL store's files archived before the store kept them).
pub async fn kept(store: &Store, data_dir: &Path, checksum: &str) -> Result<Option<Vec<u8>>> {
    if store.backend() == store::Backend::Postgres {
        if let Some(b) = store.archive_get(checksum).await? {
            return Ok(Some(b));
        }
    }
    match std::fs::read(archive_path(data_dir, checksum)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::unavailable(format!("the archived copy {checksum}: {e}"))),
    }
}

/// Where a load's bytes are kept, in words for a person.
pub fn kept_where(store: &Store, data_dir: &Path, checksum: &str) -> String {
    match store.backend() {
        store::Backend::Postgres => format!("in the store (hr_archive, sha256 {checksum})"),
        store::Backend::Sqlite => archive_path(data_dir, checksum).display().to_string(),
    }
}

/// Keeps the bytes under their checksum (written aside, then renamed: never half a file).
pub fn archive(data_dir: &Path, checksum: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = archive_path(data_dir, checksum);
    if path.exists() {
        return Ok(path);
    }
    let dir = path.parent().expect("has a parent");
    store::secrets::private_dir(dir).map_err(|e| Error::refused(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{checksum}.{}", std::process::id()));
    // A leftover of an interrupted archive by a process of the same id goes first.
    let _ = std::fs::remove_file(&tmp);
    store::secrets::write_private(&tmp, bytes)
        .map_err(|e| Error::refused(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::refused(format!("cannot archive to {}: {e}", path.display())))?;
    Ok(path)
}

fn stamp(t: Timestamp) -> String {
    t.to_string()
}

/// A stored snapshot row read back as a worker.
pub fn decode(row: &SnapshotRow) -> Result<Worker> {
    serde_json::from_str(&row.body)
        .map_err(|e| Error::refused(format!("the stored record of worker {} cannot be read back: {e}", row.worker_id)))
}

/// Applies an accepted load. `push_ids` are the event ids of pushed changes (empty for files);
/// if any was taken already the whole load is refused with `StoreError::Duplicate`.
pub async fn apply(
    store: &Store,
    report: &LoadReport,
    kind: LoadKind,
    cfg: &IntakeConfig,
    now: Timestamp,
    push_ids: Vec<String>,
) -> Result<Outcome, IntakeError> {
    apply_with(store, report, kind, cfg, now, LoadExtras { push_ids, ..Default::default() }).await
}

/// As `apply`; the pending events of `supersede_loads` are cancelled in the same transaction,
/// and a worker whose every change since was only pending gets no event for going back (the
/// account never moved: a bad load's false terminations are not followed by false rehires).
pub async fn apply_with(
    store: &Store,
    report: &LoadReport,
    kind: LoadKind,
    cfg: &IntakeConfig,
    now: Timestamp,
    extras: LoadExtras,
) -> Result<Outcome, IntakeError> {
    let LoadExtras { push_ids, supersede_loads, uploaded_by, bytes, fields } = extras;
    let leavers = report.leavers_on_every_row();
    let stored = match kind {
        LoadKind::Full => store.snapshot().await?,
        LoadKind::Delta => {
            let ids: Vec<String> = report
                .accepted
                .iter()
                .map(|w| &w.id)
                .chain(leavers.iter().map(|l| &l.0.id))
                .map(|w| w.to_string())
                .collect();
            store.snapshot_of(&ids).await?
        }
    };
    let mut previous: BTreeMap<WorkerId, Worker> = BTreeMap::new();
    let mut missing_since: HashMap<WorkerId, String> = HashMap::new();
    for row in &stored {
        let w = decode(row).map_err(|e| IntakeError::Corrupt(e.to_string()))?;
        if let Some(m) = &row.missing_since {
            missing_since.insert(w.id.clone(), m.clone());
        }
        previous.insert(w.id.clone(), w);
    }
    let loaded_before = store
        .loads()
        .await?
        .into_iter()
        .find(|l| l.checksum == report.checksum && l.source != "push" && l.outcome == "accepted")
        .map(|l| l.loaded_at);

    // A worker on several rows that all say it left has left, whichever row is right: its
    // stored record takes the termination (the earliest), and nothing else of the rows.
    let mut taken = vec![];
    for (row, _) in &leavers {
        let Some(old) = previous.get(&row.id) else { continue };
        let mut gone = old.clone();
        gone.status = Status::Terminated;
        gone.termination_date = row.termination_date;
        if gone != *old {
            taken.push(gone);
        }
    }
    let accepted: std::borrow::Cow<[Worker]> = if taken.is_empty() {
        std::borrow::Cow::Borrowed(&report.accepted)
    } else {
        std::borrow::Cow::Owned(report.accepted.iter().cloned().chain(taken.iter().cloned()).collect())
    };
    let mut held = report.held();
    let mut detected = hr::detect(&previous, &accepted, kind == LoadKind::Full, now, &cfg.lifecycle);
    if !supersede_loads.is_empty() {
        // Workers the later loads touched only with events still pending (so the target never
        // saw them) go back silently; one with an event already acted on gets its events.
        let mut only_pending: HashMap<String, bool> = HashMap::new();
        let all = store.events(&store::EventQuery::default()).await?;
        for e in all.iter().filter(|e| supersede_loads.contains(&e.load_id)) {
            let p = only_pending.entry(e.worker_id.clone()).or_insert(true);
            *p &= matches!(e.state, EventState::Pending | EventState::Reported);
        }
        detected.retain(|e| !only_pending.get(e.worker.as_str()).copied().unwrap_or(false));
    }
    // A worker missing from the rows whose id the file still names lost its row to damage
    // the parse did not catch: held as it was, never a leaver by the missing-worker policy.
    let mut named = vec![];
    if let Some(bytes) = &bytes {
        let missing: std::collections::HashSet<&str> = detected
            .iter()
            .filter(|e| e.kind == EventKind::MissingFromFullLoad && !held.contains(&e.worker))
            .map(|e| e.worker.as_str())
            .collect();
        if !missing.is_empty() {
            named = named_in(bytes, &missing);
        }
    }
    held.extend(named.iter().cloned());
    let load_id = uuid::Uuid::new_v4().to_string();
    let mut write = LoadWrite::default();
    let mut events: Vec<Listed> = vec![];
    let mut held_back = vec![];
    let today = |w: &Worker| {
        let tz = w.time_zone.as_ref().map(|z| z.zone()).unwrap_or_else(|| cfg.lifecycle.default_time_zone.clone());
        now.to_zoned(tz).date()
    };
    for e in detected {
        if e.kind != EventKind::MissingFromFullLoad {
            events.push(Listed { id: uuid::Uuid::new_v4().to_string(), state: EventState::Pending, event: e });
            continue;
        }
        if held.contains(&e.worker) {
            held_back.push(e.worker);
            continue;
        }
        let old = &previous[&e.worker];
        match cfg.missing {
            MissingPolicy::Ignore => {}
            // Once per absence: a worker still missing from the next full load is not news.
            MissingPolicy::Report if missing_since.contains_key(&e.worker) => {}
            MissingPolicy::Report => {
                write.upserts.push(SnapshotRow {
                    worker_id: e.worker.to_string(),
                    body: serde_json::to_string(old).expect("serialisable"),
                    missing_since: Some(stamp(now)),
                });
                events.push(Listed { id: uuid::Uuid::new_v4().to_string(), state: EventState::Reported, event: e });
            }
            MissingPolicy::Terminate => {
                let mut gone = old.clone();
                gone.status = Status::Terminated;
                // No date (or only a past one): the termination takes effect now, not at a day's end.
                gone.termination_date = old.termination_date.filter(|d| *d < today(old));
                write.upserts.push(SnapshotRow {
                    worker_id: e.worker.to_string(),
                    body: serde_json::to_string(&gone).expect("serialisable"),
                    missing_since: Some(missing_since.get(&e.worker).cloned().unwrap_or_else(|| stamp(now))),
                });
                let changes = vec![hr::FieldChange {
                    field: "status".into(),
                    before: "present".into(),
                    after: "missing from a full load: terminated by the missing-worker policy".into(),
                }];
                let event = Event { worker: e.worker, kind: EventKind::Termination, effective: now, changes };
                events.push(Listed { id: uuid::Uuid::new_v4().to_string(), state: EventState::Pending, event });
            }
        }
    }
    let mut unchanged = 0;
    for w in accepted.iter() {
        let same = previous.get(&w.id).is_some_and(|old| old == w);
        if same && !missing_since.contains_key(&w.id) {
            unchanged += 1;
            continue;
        }
        write.upserts.push(SnapshotRow {
            worker_id: w.id.to_string(),
            body: serde_json::to_string(w).expect("serialisable"),
            missing_since: None,
        });
    }
    // Pending events a new one replaces: a moved date, a rescinded termination, a cancelled start.
    let gone: std::collections::HashSet<&WorkerId> =
        accepted.iter().filter(|w| w.status == Status::Terminated).map(|w| &w.id).collect();
    for l in &events {
        let e = &l.event;
        if !previous.contains_key(&e.worker) || l.state != EventState::Pending {
            continue;
        }
        let replaces: &[&str] = match e.kind {
            // Gone already (or by policy): a start not yet acted on will not happen.
            EventKind::Termination
                if gone.contains(&e.worker) || l.event.changes.iter().any(|c| c.field == "status") =>
            {
                &["termination", "hire", "rehire", "leave_start"]
            }
            // Announced ahead: the worker still starts, works, and leaves at the new moment.
            EventKind::Termination => &["termination"],
            EventKind::Hire => &["hire"],
            EventKind::Rehire => &["termination", "rehire"],
            EventKind::LeaveStart => &["leave_start"],
            EventKind::LeaveReturn => &["leave_start"],
            EventKind::Change => {
                if e.changes.iter().any(|c| c.field == "termination_date" && c.after.is_empty()) {
                    &["termination"]
                } else {
                    &[]
                }
            }
            EventKind::MissingFromFullLoad => &[],
        };
        write.supersede.extend(replaces.iter().map(|k| (e.worker.to_string(), k.to_string())));
    }
    write.events = events
        .iter()
        .map(|l| EventRecord {
            id: l.id.clone(),
            load_id: load_id.clone(),
            worker_id: l.event.worker.to_string(),
            kind: l.event.kind.as_str().into(),
            effective_at: l.event.effective.as_second(),
            body: serde_json::to_string(&l.event).expect("serialisable"),
            state: l.state,
            created_at: stamp(now),
        })
        .collect();
    write.quarantined = report
        .quarantined
        .iter()
        .map(|q| (q.row as i64, q.worker_id.as_ref().map(|w| w.to_string()), serde_json::to_string(q).expect("json")))
        .collect();
    // Held workers, with the rows that hold them and why, listed until a load takes a row.
    let taken_ids: std::collections::HashSet<&WorkerId> = taken.iter().map(|w| &w.id).collect();
    let mut rows_of: BTreeMap<&WorkerId, Vec<&hr::QuarantinedRow>> = BTreeMap::new();
    for q in &report.quarantined {
        if let Some(id) = q.worker_id.as_ref().filter(|id| !taken_ids.contains(id)) {
            rows_of.entry(id).or_default().push(q);
        }
    }
    write.held = rows_of.into_iter().map(|(id, rows)| (id.to_string(), held_reason(&report.file, &rows))).collect();
    for id in &named {
        write.held.push((
            id.to_string(),
            format!(
                "no row of {} could be read for this worker, yet the file names its id (a damaged quote may have \
                 merged its row into another); not taken as missing, the worker keeps its last accepted HR record",
                report.file
            ),
        ));
    }
    write.held_settled = match kind {
        LoadKind::Full => store::HeldSettled::All,
        LoadKind::Delta => store::HeldSettled::Workers(accepted.iter().map(|w| w.id.to_string()).collect()),
    };
    write.push_ids = push_ids;
    write.supersede_loads = supersede_loads;
    let source = report.file.clone();
    write.load = Some(LoadRecord {
        id: load_id.clone(),
        source: source.clone(),
        checksum: report.checksum.clone(),
        kind: format!("{kind:?}").to_lowercase(),
        loaded_at: stamp(Timestamp::now()),
        rows: report.rows as i64,
        accepted: report.accepted.len() as i64,
        quarantined: report.quarantined.len() as i64,
        events: events.len() as i64,
        outcome: "accepted".into(),
        reason: None,
        uploaded_by,
        fields: fields.as_ref().map(|f| serde_json::to_string(f).expect("a summary serialises")),
    });
    store.record_load(&write).await?;
    Ok(Outcome {
        load_id,
        kind,
        source,
        checksum: report.checksum.clone(),
        rows: report.rows,
        accepted: report.accepted.len(),
        quarantined: report.quarantined.len(),
        unchanged,
        held: held_back,
        terminations_taken: taken.iter().map(|w| w.id.clone()).collect(),
        named,
        events,
        loaded_before,
        fields,
    })
}

/// Which of `ids` the file names as a whole value (between delimiters, quotes or line ends,
/// in CSV or JSON), in one pass over its bytes.
fn named_in(bytes: &[u8], ids: &std::collections::HashSet<&str>) -> Vec<WorkerId> {
    let mut found: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let edge = |b: &u8| {
        matches!(b, b',' | b';' | b'\t' | b'|' | b'"' | b'\'' | b'\n' | b'\r' | b':' | b'{' | b'}' | b'[' | b']')
    };
    for token in bytes.split(edge) {
        let Ok(t) = std::str::from_utf8(token) else { continue };
        if let Some(id) = ids.get(t.trim()) {
            found.insert(id);
        }
    }
    found.into_iter().filter_map(|id| WorkerId::parse(id).ok()).collect()
}

/// Why a worker is held by its quarantined rows, in a person's words.
fn held_reason(file: &str, rows: &[&hr::QuarantinedRow]) -> String {
    let numbers: Vec<String> = rows.iter().map(|q| q.row.to_string()).collect();
    let mut why: Vec<&str> = vec![];
    for p in rows.iter().flat_map(|q| &q.problems) {
        if !why.contains(&p.reason.as_str()) {
            why.push(&p.reason);
        }
    }
    format!(
        "{} {} of {file} quarantined ({}); the worker keeps its last accepted HR record until HR sends a row \
         tenure can take",
        if rows.len() == 1 { "row" } else { "rows" },
        numbers.join(", "),
        why.join("; ")
    )
}

/// Records a file that was refused whole, so that the history shows it and why: nothing else
/// of it is written.
pub async fn record_rejected(
    store: &Store,
    source: &str,
    checksum: &str,
    kind: LoadKind,
    reason: &str,
    uploaded_by: Option<&str>,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let load = LoadRecord {
        id: id.clone(),
        source: source.into(),
        checksum: checksum.into(),
        kind: format!("{kind:?}").to_lowercase(),
        loaded_at: stamp(Timestamp::now()),
        rows: 0,
        accepted: 0,
        quarantined: 0,
        events: 0,
        outcome: "rejected".into(),
        reason: Some(reason.into()),
        uploaded_by: uploaded_by.map(str::to_string),
        fields: None,
    };
    store.record_load(&LoadWrite { load: Some(load), ..Default::default() }).await?;
    Ok(id)
}

/// A load's per-field summary, when it was kept (loads before it was, and refused ones, have
/// none).
pub fn load_fields(l: &LoadRecord) -> Option<rules::summary::Summary> {
    l.fields.as_deref().and_then(|f| serde_json::from_str(f).ok())
}

/// A load as listed (the CLI's `hr loads --json`, the API's loads).
pub fn load_view(l: &LoadRecord) -> serde_json::Value {
    let warnings = load_fields(l).map(|f| f.warnings()).unwrap_or_default();
    serde_json::json!({"id": l.id, "source": l.source, "checksum": l.checksum, "kind": l.kind,
        "loaded_at": l.loaded_at, "outcome": l.outcome, "reason": l.reason, "rows": l.rows,
        "accepted": l.accepted, "quarantined": l.quarantined, "events": l.events, "uploaded_by": l.uploaded_by,
        "warnings": warnings})
}

/// SHA-256 of bytes, as loads are keyed.
pub fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest;
    store::secrets::hex(&sha2::Sha256::digest(bytes))
}

/// Reads stored events back.
pub fn listed(r: &EventRecord) -> Result<Listed> {
    let event: Event = serde_json::from_str(&r.body)
        .map_err(|e| Error::refused(format!("the stored event {} cannot be read back: {e}", r.id)))?;
    Ok(Listed { id: r.id.clone(), state: r.state, event })
}

#[derive(Debug)]
pub enum IntakeError {
    Store(StoreError),
    /// The stored snapshot does not read back: nothing is changed.
    Corrupt(String),
}

impl From<IntakeError> for Error {
    fn from(e: IntakeError) -> Error {
        match e {
            IntakeError::Store(s) => s.into(),
            IntakeError::Corrupt(_) => Error::refused(e.to_string()),
        }
    }
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        IntakeError::Store(e)
    }
}

impl std::fmt::Display for IntakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntakeError::Store(e) => write!(f, "{e}"),
            IntakeError::Corrupt(e) => write!(f, "{e}; the load was not applied"),
        }
    }
}

pub async fn workers(store: &Store) -> Result<Vec<hr::Worker>> {
    let rows = store.snapshot_decoded::<hr::Worker>().await?;
    Ok(rows.into_iter().map(|(_, w)| w).collect())
}

/// One problem of a quarantined row, as the console's table shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineLine {
    pub row: i64,
    pub line: Option<u64>,
    pub worker: Option<String>,
    pub column: String,
    pub value: String,
    pub reason: String,
}

/// A load's quarantined rows: each problem on a line of its own (a row with two bad values is
/// two lines), in row order.
pub async fn quarantine(store: &Store, load_id: &str) -> Result<Vec<QuarantineLine>> {
    if store.load(load_id).await?.is_none() {
        return Err(Error::not_found(format!("no HR load {load_id:?}")));
    }
    let mut out = vec![];
    for (row, worker, body) in store.quarantined(load_id).await? {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let line = v["line"].as_u64();
        let problems = v["problems"].as_array().cloned().unwrap_or_default();
        if problems.is_empty() {
            out.push(QuarantineLine {
                row,
                line,
                worker: worker.clone(),
                column: String::new(),
                value: String::new(),
                reason: "the row could not be read".into(),
            });
        }
        for p in problems {
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            out.push(QuarantineLine {
                row,
                line,
                worker: worker.clone(),
                column: text("column"),
                value: text("value"),
                reason: text("reason"),
            });
        }
    }
    Ok(out)
}

/// A load's quarantined rows as a CSV to fix and send again: the file's own header (from the
/// archived copy, when kept) then each row as it was read, after three columns saying which row
/// it was and why it was set aside. No cell can start a formula in a spreadsheet.
pub async fn quarantined_csv(store: &Store, data_dir: &Path, load_id: &str) -> Result<Vec<u8>> {
    let load = store.load(load_id).await?.ok_or_else(|| Error::not_found(format!("no HR load {load_id:?}")))?;
    let rows = store.quarantined(load_id).await?;
    let header: Vec<String> = kept(store, data_dir, &load.checksum)
        .await
        .ok()
        .flatten()
        .and_then(|bytes| {
            let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&bytes[..]);
            r.records().next().and_then(|h| h.ok()).map(|h| h.iter().map(str::to_string).collect())
        })
        .unwrap_or_default();
    let fail = |e: csv::Error| Error::unavailable(e.to_string());
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(vec![]);
    let mut head = vec!["row".to_string(), "line".to_string(), "why".to_string()];
    head.extend(header);
    w.write_record(&head).map_err(fail)?;
    for (row, _, body) in rows {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let why: Vec<String> = v["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!("{}: {}", p["column"].as_str().unwrap_or_default(), p["reason"].as_str().unwrap_or_default())
            })
            .collect();
        let mut cells =
            vec![row.to_string(), v["line"].as_u64().map(|l| l.to_string()).unwrap_or_default(), why.join("; ")];
        cells.extend(v["raw"].as_array().into_iter().flatten().map(|c| c.as_str().unwrap_or_default().to_string()));
        w.write_record(cells.iter().map(|c| hr::csv_safe(c).into_owned())).map_err(fail)?;
    }
    w.into_inner().map_err(|e| Error::unavailable(e.to_string()))
}
