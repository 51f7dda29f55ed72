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
    /// id, name, e-mail and status, separated by `SEP`, one worker after another.
    shown: String,
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
        let name = format!("{} {}", w.preferred_name.as_ref().unwrap_or(&w.first_name), w.last_name);
        let email = w.work_email.as_deref().unwrap_or("");
        // A line break or SEP in a value would join two workers' keys: neither matches.
        let line = format!("{}{SEP}{name}{SEP}{}{SEP}{email}", w.id, w.first_name).to_lowercase().replace('\n', " ");
        self.keys.push_str(&line);
        self.keys.push('\n');
        self.key_starts.push(self.keys.len() as u32);
        self.shown.push_str(&format!("{}{SEP}{name}{SEP}{email}{SEP}{}", w.id, w.status.state));
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

    /// The workers whose keys hold `needle` (lower case), in id order, each once.
    fn matching<'a>(&'a self, needle: &'a str) -> Box<dyn Iterator<Item = usize> + 'a> {
        if needle.is_empty() {
            return Box::new(0..self.len());
        }
        if needle.contains(['\n', SEP]) {
            return Box::new(std::iter::empty());
        }
        let mut last = None;
        Box::new(memchr::memmem::find_iter(self.keys.as_bytes(), needle.as_bytes()).filter_map(move |at| {
            let i = self.key_starts.partition_point(|&s| s as usize <= at) - 1;
            (last != Some(i)).then(|| {
                last = Some(i);
                i
            })
        }))
    }

    fn get(&self, i: usize) -> Found<'_> {
        let mut f = Entries::line(&self.shown, &self.shown_starts, i).split(SEP);
        let mut next = || f.next().unwrap_or_default();
        let (id, name, email, status) = (next(), next(), next(), next());
        Found { id, name, email: Some(email).filter(|e| !e.is_empty()), status }
    }

    /// The workers whose id, name or e-mail holds `query` (any case), `limit` of them after
    /// the first `offset`; an empty query finds everyone.
    pub fn search(&self, query: &str, limit: usize, offset: usize) -> Page<'_> {
        let needle = query.trim().to_lowercase();
        let mut total = 0;
        let mut workers = vec![];
        for i in self.matching(&needle) {
            if total >= offset && workers.len() < limit {
                workers.push(self.get(i));
            }
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
}

impl Index {
    fn get(&self) -> Option<(Mark, Arc<Entries>)> {
        self.built.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The index of the snapshot as it stands, built or rebuilt first if a load landed.
    pub async fn current(&self, store: &Store) -> Result<Arc<Entries>> {
        let mark = store.loads_mark().await?;
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
}
