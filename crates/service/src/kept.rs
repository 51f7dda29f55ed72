//! Results that take seconds at 100,000 workers (a plan, what a draft would change, how many
//! workers each role takes), kept for the pages that show them. Each is kept under a mark of
//! what it was made from (`marks`): it is made again when the mark moves, when it is older than
//! its age, or when a person asks for it fresh. One making at a time: a second asker waits for
//! the first and takes its result. Only a few results are kept, and old ones go when a new one
//! is made, so the memory a 100,000-worker plan takes is given back.

use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;

struct Entry<T> {
    mark: String,
    at: Instant,
    made: jiff::Timestamp,
    value: Arc<T>,
}

/// A kept result with when it was made.
pub struct Got<T> {
    pub value: Arc<T>,
    pub made: jiff::Timestamp,
    /// Whether it was made for this asking (else it was kept).
    pub fresh: bool,
}

pub struct Kept<T> {
    max_age: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, Entry<T>>>,
    making: tokio::sync::Mutex<()>,
}

impl<T> Kept<T> {
    pub fn new(max_age: Duration, max_entries: usize) -> Self {
        Kept { max_age, max_entries, entries: Mutex::default(), making: tokio::sync::Mutex::new(()) }
    }

    /// The result kept under `key` if it was made under `mark` and is young enough; nothing is
    /// made.
    pub fn peek(&self, key: &str, mark: &str) -> Option<Got<T>> {
        self.hit(key, mark)
    }

    fn hit(&self, key: &str, mark: &str) -> Option<Got<T>> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.get(key).filter(|e| e.mark == mark && e.at.elapsed() < self.max_age).map(|e| Got {
            value: e.value.clone(),
            made: e.made,
            fresh: false,
        })
    }

    /// The result kept under `key` if it was made under `mark` and is young enough (unless
    /// `fresh`), else `make`'s, kept.
    pub async fn get<F, Fut>(&self, key: &str, mark: &str, fresh: bool, make: F) -> Result<Got<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if !fresh {
            if let Some(g) = self.hit(key, mark) {
                return Ok(g);
            }
        }
        let asked = Instant::now();
        let _one = self.making.lock().await;
        // Made by another asker while this one waited.
        if let Some(g) = self.hit(key, mark).filter(|_| !fresh || self.made_since(key, asked)) {
            return Ok(g);
        }
        let value = Arc::new(make().await?);
        let made = jiff::Timestamp::now();
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|_, x| x.at.elapsed() < self.max_age);
        while e.len() >= self.max_entries {
            let Some(oldest) = e.iter().min_by_key(|(_, x)| x.at).map(|(k, _)| k.clone()) else { break };
            e.remove(&oldest);
        }
        e.insert(key.to_string(), Entry { mark: mark.to_string(), at: Instant::now(), made, value: value.clone() });
        Ok(Got { value, made, fresh: true })
    }

    fn made_since(&self, key: &str, t: Instant) -> bool {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).is_some_and(|e| e.at >= t)
    }
}

/// What a plan of `connection` is made from, as one mark: the configuration in force, the HR
/// loads, and the connection's last run (which changes the accounts).
pub async fn marks(store: &Store, connection: &str) -> Result<String> {
    let config = store.current_config().await?.map(|v| v.id).unwrap_or_default();
    let (loads, last) = store.loads_mark().await?;
    let run = store.runs(Some(connection), 1).await?.into_iter().next();
    let run = run.map(|r| format!("{}:{}", r.id, r.finished_at.unwrap_or_default())).unwrap_or_default();
    Ok(format!("{config}|{loads}|{}|{run}", last.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn made_once_per_mark_and_again_when_asked_or_moved() {
        let kept: Kept<usize> = Kept::new(Duration::from_secs(60), 2);
        let made = AtomicUsize::new(0);
        let make = || async { Ok(made.fetch_add(1, Ordering::SeqCst)) };
        assert!(kept.get("a", "m1", false, make).await.unwrap().fresh);
        let again = kept.get("a", "m1", false, make).await.unwrap();
        assert!(!again.fresh && *again.value == 0);
        assert_eq!(*kept.get("a", "m2", false, make).await.unwrap().value, 1, "the mark moved");
        assert_eq!(*kept.get("a", "m2", true, make).await.unwrap().value, 2, "asked fresh");
        // Two askers at once: one making, the other takes its result.
        let (x, y) = tokio::join!(kept.get("b", "m", false, make), kept.get("b", "m", false, make));
        assert_eq!(x.unwrap().value, y.unwrap().value);
        assert_eq!(made.load(Ordering::SeqCst), 4);
        // At most two kept: the oldest went.
        kept.get("c", "m", false, make).await.unwrap();
        assert!(kept.hit("a", "m2").is_none());
    }

    #[tokio::test]
    async fn an_old_result_is_made_again() {
        let kept: Kept<u8> = Kept::new(Duration::from_millis(1), 4);
        kept.get("a", "m", false, || async { Ok(1) }).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(kept.get("a", "m", false, || async { Ok(2) }).await.unwrap().fresh);
    }
}
