//! Finding workers: the last snapshot's workers searchable by part of their id, name or
//! e-mail, as people type it. The index is held in memory by the long-running service,
//! rebuilt when a load lands, and kept small: every worker's lower-cased keys on one line of
//! one string (a search is one substring scan over it, memchr's memmem, rather than a hundred
//! thousand small ones) and what a result shows in a second string; a few allocations in all.

use crate::error::Result;
use serde::Deserialize;
use std::sync::Arc;
use store::Store;

/// Rows decoded at a time while the index is built: the index and one chunk are all that is
/// in memory on the way (a whole 100,000-worker snapshot decoded at once left 45 MiB behind).
const BUILD_CHUNK: usize = 2_000;

const SEP: char = '\u{1}';

/// A worker as a search shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub status: &'a str,
}

/// One page of a search: how many match in all, and this page's workers in id order.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    pub total: usize,
    pub workers: Vec<Found<'a>>,
}

#[derive(Default)]
pub struct Entries {
    keys: String,
    /// Where each worker's line of `keys` starts (and, last, where the last one ends).
    key_starts: Vec<u32>,
    /// Per worker: its status (its number in `states`) and name as shown, separated by `SEP`;
    /// then, only when they are not as their keys hold them (lower case, no line break), its
    /// id and e-mail. Most ids and addresses are lower case already: they are kept once, in
    /// `keys` (a third less memory at 100,000 workers).
    shown: String,
    /// The HR states met, each kept once (a handful: active, leave, terminated).
    states: Vec<String>,
    shown_starts: Vec<u32>,
    /// Whether the workers came in id order (the store's collation may order otherwise).
    sorted: bool,
    last_id: String,
}

/// The few fields of a stored worker the search needs: read alone, not the whole record.
#[derive(Deserialize)]
struct Searched {
    id: String,
    first_name: String,
    last_name: String,
    preferred_name: Option<String>,
    work_email: Option<String>,
    status: SearchedStatus,
}

#[derive(Deserialize)]
struct SearchedStatus {
    state: String,
}

impl Entries {
    fn new() -> Entries {
        Entries { sorted: true, key_starts: vec![0], shown_starts: vec![0], ..Default::default() }
    }

    fn push(&mut self, w: Searched) {
        // The legal first name is a key too when another name is used (found by either).
        let preferred = w.preferred_name.as_ref().filter(|p| **p != w.first_name);
        let name = format!("{} {}", preferred.unwrap_or(&w.first_name), w.last_name);
        let email = w.work_email.as_deref().unwrap_or("");
        let line = match preferred {
            Some(_) => format!("{}{SEP}{name}{SEP}{}{SEP}{email}", w.id, w.first_name),
            None => format!("{}{SEP}{name}{SEP}{email}", w.id),
        };
        // A line break or SEP in a value would join two workers' keys: neither matches.
        self.keys.push_str(&line.to_lowercase().replace('\n', " "));
        self.keys.push('\n');
        self.key_starts.push(self.keys.len() as u32);
        let state = match self.states.iter().position(|s| *s == w.status.state) {
            Some(i) => i,
            None => {
                self.states.push(w.status.state);
                self.states.len() - 1
            }
        };
        let as_key = |v: &str| !v.contains(SEP) && v == v.to_lowercase().replace('\n', " ");
        if as_key(&w.id) && as_key(email) {
            self.shown.push_str(&format!("{state}{SEP}{name}"));
        } else {
            self.shown.push_str(&format!("{state}{SEP}{name}{SEP}{}{SEP}{email}", w.id));
        }
        self.shown_starts.push(self.shown.len() as u32);
        if w.id < self.last_id {
            self.sorted = false;
        }
        self.last_id = w.id;
    }

    fn line<'a>(text: &'a str, starts: &[u32], i: usize) -> &'a str {
        &text[starts[i] as usize..starts[i + 1] as usize]
    }

    /// In id order, compact.
    fn finish(mut self) -> Entries {
        if !self.sorted {
            let mut order: Vec<usize> = (0..self.len()).collect();
            order.sort_by_key(|&i| self.get(i).id);
            let mut e = Entries::new();
            e.states = std::mem::take(&mut self.states);
            for i in order {
                e.keys.push_str(Entries::line(&self.keys, &self.key_starts, i));
                e.key_starts.push(e.keys.len() as u32);
                e.shown.push_str(Entries::line(&self.shown, &self.shown_starts, i));
                e.shown_starts.push(e.shown.len() as u32);
            }
            self = e;
        }
        self.keys.shrink_to_fit();
        self.shown.shrink_to_fit();
        self.key_starts.shrink_to_fit();
        self.shown_starts.shrink_to_fit();
        self.last_id = String::new();
        self
    }

    pub fn len(&self) -> usize {
        self.key_starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, i: usize) -> Found<'_> {
        let mut f = Entries::line(&self.shown, &self.shown_starts, i).split(SEP);
        let mut next = || f.next().unwrap_or_default();
        let (state, name, id, email) = (next(), next(), next(), next());
        let (id, email) = if id.is_empty() {
            // As the keys hold them: the line's first and last parts.
            let keys = Entries::line(&self.keys, &self.key_starts, i).trim_end_matches('\n');
            (keys.split(SEP).next().unwrap_or_default(), keys.rsplit(SEP).next().unwrap_or_default())
        } else {
            (id, email)
        };
        let status = state.parse::<usize>().ok().and_then(|i| self.states.get(i)).map_or("", String::as_str);
        Found { id, name, email: Some(email).filter(|e| !e.is_empty()), status }
    }

    /// The workers whose id, name or e-mail holds `query` (any case), `limit` of them after
    /// the first `offset`; an empty query finds everyone.
    pub fn search(&self, query: &str, limit: usize, offset: usize) -> Page<'_> {
        let needle = query.trim().to_lowercase();
        if needle.is_empty() {
            let end = offset.saturating_add(limit).min(self.len());
            return Page { total: self.len(), workers: (offset.min(end)..end).map(|i| self.get(i)).collect() };
        }
        // A line break or SEP would reach across a worker's keys or into the next worker's.
        if needle.contains(['\n', SEP]) {
            return Page { total: 0, workers: vec![] };
        }
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let keys = self.keys.as_bytes();
        let (mut at, mut total, mut workers) = (0, 0, vec![]);
        while let Some(found) = finder.find(&keys[at..]) {
            let hit = at + found;
            // Only a shown worker needs its position; the others are counted. Either way the
            // scan goes on after this worker's line, so each worker counts once.
            at = if total >= offset && workers.len() < limit {
                let i = self.key_starts.partition_point(|&s| s as usize <= hit) - 1;
                workers.push(self.get(i));
                self.key_starts[i + 1] as usize
            } else {
                memchr::memchr(b'\n', &keys[hit..]).map_or(keys.len(), |n| hit + n + 1)
            };
            total += 1;
        }
        Page { total, workers }
    }
}

/// A mark that changes whenever a load is recorded (`Store::loads_mark`).
type Mark = (i64, Option<String>);

/// The index of the last snapshot, rebuilt when a load lands.
#[derive(Default)]
pub struct Index {
    built: std::sync::RwLock<Option<(Mark, Arc<Entries>)>>,
    /// Held by the one caller that rebuilds; the others answer from the index before it
    /// meanwhile rather than wait.
    building: tokio::sync::Mutex<()>,
    /// The last mark read and when that read ended: callers asking while a read is under
    /// way take its answer rather than each reading the same (people typing ask together).
    mark: tokio::sync::Mutex<Option<(std::time::Instant, Mark)>>,
}

impl Index {
    fn get(&self) -> Option<(Mark, Arc<Entries>)> {
        self.built.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The loads mark, read once for the callers asking together: a caller gets a mark read
    /// after it asked, or by the read under way when it asked.
    async fn mark(&self, store: &Store) -> Result<Mark> {
        let asked = std::time::Instant::now();
        let mut last = self.mark.lock().await;
        if let Some((ended, m)) = last.as_ref() {
            if *ended >= asked {
                return Ok(m.clone());
            }
        }
        let m = store.loads_mark().await?;
        *last = Some((std::time::Instant::now(), m.clone()));
        Ok(m)
    }

    /// The index of the snapshot as it stands, built or rebuilt first if a load landed.
    pub async fn current(&self, store: &Store) -> Result<Arc<Entries>> {
        let mark = self.mark(store).await?;
        let before = self.get();
        if let Some((m, v)) = &before {
            if *m == mark {
                return Ok(v.clone());
            }
        }
        let _building = match (self.building.try_lock(), &before) {
            (Ok(g), _) => g,
            // Being rebuilt: the last index answers until the new one is there.
            (Err(_), Some((_, v))) => return Ok(v.clone()),
            (Err(_), None) => self.building.lock().await,
        };
        if let Some((m, v)) = self.get() {
            if m == mark {
                return Ok(v);
            }
        }
        let mut e = Entries::new();
        store.snapshot_each::<Searched>(BUILD_CHUNK, |_, w| e.push(w)).await?;
        let v = Arc::new(e.finish());
        *self.built.write().unwrap_or_else(|p| p.into_inner()) = Some((mark, v.clone()));
        Ok(v)
    }
}

/// An HR event of one worker as stored: which load brought it, its state, and the event.
pub struct WorkerEvent {
    pub load_id: String,
    pub created_at: String,
    pub listed: crate::intake::Listed,
}

/// One worker's "why": their record, each connection's decision (every role tried, each test
/// with the value it saw), mapped attributes and plan against the account as read now, their
/// HR events load by load, and their timeline in the audit.
pub struct Why {
    pub worker: hr::Worker,
    pub connections: Vec<crate::preview::Previewed>,
    /// Why there is no decision to show (no configuration saved yet).
    pub no_rules: Option<String>,
    pub events: Vec<WorkerEvent>,
    pub timeline: Vec<store::AuditRecord>,
}

/// The namesakes of the snapshot as it stands, kept between askings of a worker's "why" (one
/// pass over every worker, made again when the configuration, the HR data or the day changes).
pub type KeptNamesakes = crate::kept::Kept<crate::preview::Namesakes>;

/// A place to keep namesakes: one set, for a day at most (its mark holds what it was made from,
/// the day included).
pub fn kept_namesakes() -> KeptNamesakes {
    crate::kept::Kept::new(std::time::Duration::from_secs(24 * 3600), 1)
}

/// The "why" of worker `id`, on the connections `may_see` lets the caller see (the timeline's
/// records too, besides those of no connection).
pub async fn why(
    store: &Store,
    key: &store::MasterKey,
    id: &str,
    may_see: impl Fn(&str) -> bool,
    namesakes: &KeptNamesakes,
) -> Result<Why> {
    let rows = store.snapshot_of(&[id.to_string()]).await?;
    let row =
        rows.first().ok_or_else(|| crate::error::Error::not_found(format!("no worker {id:?} in the last load")))?;
    let worker = crate::intake::decode(row)?;
    let (connections, no_rules) = match crate::config::current_if_any(store).await? {
        Some(rules) => {
            let today = jiff::Zoned::now().date();
            let config = store.current_config().await?.map(|v| v.id).unwrap_or_default();
            let (loads, last) = store.loads_mark().await?;
            let mark = format!("{config}|{loads}|{}|{today}", last.unwrap_or_default());
            let names = namesakes
                .get("namesakes", &mark, false, || crate::preview::Namesakes::build(store, &rules, today))
                .await?;
            let ids = [id.to_string()];
            let all =
                crate::preview::preview_with(store, Some(key), &rules, &ids, None, None, Some(&names.value)).await?;
            (all.into_iter().filter(|p| may_see(&p.decision.connection)).collect(), None)
        }
        None => (vec![], Some("no roles or mapping saved yet: nothing decides this worker's accounts".to_string())),
    };
    let events = store
        .events(&store::EventQuery { worker_id: Some(id.to_string()), ..Default::default() })
        .await?
        .iter()
        .filter_map(|e| {
            let listed = crate::intake::listed(e).ok()?;
            Some(WorkerEvent { load_id: e.load_id.clone(), created_at: e.created_at.clone(), listed })
        })
        .collect();
    let timeline = store
        .audit(Some(id))
        .await?
        .into_iter()
        .filter(|a| a.entry.connection.is_empty() || may_see(&a.entry.connection))
        .collect();
    Ok(Why { worker, connections, no_rules, events, timeline })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, first: &str, last: &str, email: Option<&str>) -> Searched {
        Searched {
            id: id.into(),
            first_name: first.into(),
            last_name: last.into(),
            preferred_name: None,
            work_email: email.map(Into::into),
            status: SearchedStatus { state: "active".into() },
        }
    }

    fn ids<'a>(p: &'a Page<'a>) -> Vec<&'a str> {
        p.workers.iter().map(|f| f.id).collect()
    }

    #[test]
    fn a_search_finds_by_id_name_or_email_in_id_order_each_once() {
        let mut e = Entries::new();
        // Out of order on purpose: the store's collation may not be byte order.
        e.push(w("1003", "Ann", "Annson", Some("ann@x.com")));
        e.push(w("1001", "Bob", "Stone", None));
        e.push(w("1002", "Cy", "Bobbins", Some("cy@x.com")));
        let e = e.finish();
        assert_eq!(e.len(), 3);
        assert_eq!(ids(&e.search("BOB", 10, 0)), ["1001", "1002"]);
        // "ann" is in both of 1003's names and its e-mail: listed once.
        assert_eq!(e.search("ann", 10, 0).total, 1);
        assert_eq!(ids(&e.search("100", 2, 1)), ["1002", "1003"]);
        assert_eq!(e.search("100", 2, 1).total, 3);
        assert_eq!(e.search("", 10, 0).total, 3);
        assert_eq!(e.search("nobody", 10, 0), Page { total: 0, workers: vec![] });
        let bob = &e.search("stone", 1, 0).workers[0];
        assert_eq!(*bob, Found { id: "1001", name: "Bob Stone", email: None, status: "active" });
        // A query cannot reach across two workers' lines.
        assert_eq!(e.search("x.com\n1001", 10, 0).total, 0);
        assert_eq!(e.search("annson\u{1}", 10, 0).total, 0);
    }

    #[test]
    fn a_preferred_name_is_shown_and_the_legal_one_still_finds_the_worker_with_their_state() {
        let mut e = Entries::new();
        let mut robert = w("2001", "Robert", "Smith", Some("bob@x.com"));
        robert.preferred_name = Some("Bob".into());
        let mut left = w("2002", "Ann", "Lee", None);
        left.status.state = "terminated".into();
        e.push(robert);
        e.push(left);
        let e = e.finish();
        let found = &e.search("robert", 10, 0).workers;
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].name, found[0].status), ("Bob Smith", "active"));
        assert_eq!(e.search("ann lee", 10, 0).workers[0].status, "terminated");
        // An id or address not in lower case is shown as HR gave it.
        let mut e = Entries::new();
        e.push(w("ID-7", "Cy", "Lo", Some("Cy.Lo@X.com")));
        e.push(w("id-8", "Di", "Mo", Some("di@x.com")));
        let e = e.finish();
        let shown = |q: &str| {
            let f = &e.search(q, 1, 0).workers[0];
            (f.id, f.name, f.email)
        };
        assert_eq!(shown("cy.lo@x"), ("ID-7", "Cy Lo", Some("Cy.Lo@X.com")));
        assert_eq!(shown("di mo"), ("id-8", "Di Mo", Some("di@x.com")));
        // The page starts after the offset and counts every match.
        assert_eq!(e.search("", 1, 1), Page { total: 2, workers: vec![e.get(1)] });
        assert_eq!(e.search("", 5, 9), Page { total: 2, workers: vec![] });
    }
}
