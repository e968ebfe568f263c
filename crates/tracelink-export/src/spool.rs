//! Where batches wait while ingestion cannot take them: a directory of files (the disk
//! spool, on by default), or memory when the spool is off or unusable.
//!
//! Disk spool rules: a file per batch, written atomically (temp
//! file, fsync, rename), named `<unix ms>-<pid>-<seq>-<items>.trn` so that names sort oldest
//! first; at most `max_bytes` in all, the oldest dropped first (counted); files older than
//! 48 hours are deleted unsent (counted); a file that is not valid gzip is deleted with a
//! warning (counted). The same rules hold for the memory store, but for durability.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::Batch;
use crate::stats::{Counters, DropReason};

/// Oldest batch ingestion accepts.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(48 * 3600);
const SUFFIX: &str = ".trn";

/// A stored batch's handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    File(PathBuf),
    Memory(u64),
}

#[derive(Debug)]
pub(crate) enum Store {
    Disk(Disk),
    Memory(Memory),
}

#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    max_bytes: u64,
    seq: AtomicU64,
    lock: Mutex<()>,
    stats: Arc<Counters>,
}

#[derive(Debug)]
pub(crate) struct Memory {
    queue: Mutex<VecDeque<(u64, SystemTime, Batch)>>,
    max_bytes: u64,
    seq: AtomicU64,
    stats: Arc<Counters>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `(written at, items)` from a spool file name.
fn parse_name(name: &str) -> Option<(SystemTime, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let ms: u64 = parts.next()?.parse().ok()?;
    let count: u64 = parts.nth(2)?.parse().ok()?;
    Some((UNIX_EPOCH + Duration::from_millis(ms), count))
}

impl Disk {
    /// Opens (creating) a spool directory; `Err` when it is unusable.
    pub(crate) fn open(dir: &Path, max_bytes: u64, stats: Arc<Counters>) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        // Prove we can write here before relying on it.
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        fs::write(&probe, b"ok")?;
        fs::remove_file(&probe)?;
        let disk = Self {
            dir: dir.to_owned(),
            max_bytes,
            seq: AtomicU64::new(0),
            lock: Mutex::new(()),
            stats,
        };
        // Leftover temp files of a killed process are incomplete: remove them.
        for entry in fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        disk.refresh_bytes();
        Ok(disk)
    }

    /// Spool files, oldest first, with their sizes.
    fn files(&self) -> Vec<(PathBuf, u64)> {
        let mut files: Vec<(PathBuf, u64)> = fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
                    .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    fn refresh_bytes(&self) {
        let total: u64 = self.files().iter().map(|(_, n)| n).sum();
        self.stats.spool_bytes.store(total, Relaxed);
    }

    fn drop_file(&self, path: &Path, reason: DropReason) {
        let count = path
            .file_name()
            .and_then(|n| parse_name(&n.to_string_lossy()))
            .map_or(0, |(_, c)| c);
        if fs::remove_file(path).is_ok() {
            self.stats.drop_items(reason, count);
        }
    }

    fn put(&self, batch: &Batch) -> std::io::Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let size = batch.gz.len() as u64;
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|(_, n)| n).sum();
        while total + size > self.max_bytes && !files.is_empty() {
            let (oldest, n) = files.remove(0);
            tracing::warn!(target: "tracelink_export", "spool is full: dropping its oldest batch");
            self.drop_file(&oldest, DropReason::SpoolFull);
            total -= n;
        }
        if total + size > self.max_bytes {
            self.stats
                .drop_items(DropReason::SpoolFull, u64::from(batch.count));
            return Ok(());
        }
        let seq = self.seq.fetch_add(1, Relaxed);
        let name = format!(
            "{:016}-{}-{seq:08}-{}{SUFFIX}",
            now_ms(),
            std::process::id(),
            batch.count
        );
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&batch.gz)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.dir.join(&name))?;
        self.stats
            .spooled
            .fetch_add(u64::from(batch.count), Relaxed);
        self.stats.spool_bytes.store(total + size, Relaxed);
        Ok(())
    }

    fn oldest(&self) -> Option<(Key, Batch)> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        for (path, _) in self.files() {
            let name = path.file_name()?.to_string_lossy().into_owned();
            let Some((written, count)) = parse_name(&name) else {
                continue;
            };
            if SystemTime::now()
                .duration_since(written)
                .unwrap_or_default()
                > MAX_AGE
            {
                self.drop_file(&path, DropReason::Expired);
                continue;
            }
            let batch = fs::read(&path).ok().map(|gz| Batch {
                gz: Bytes::from(gz),
                count: count as u32,
            });
            match batch {
                Some(b) if b.lines().is_some() => return Some((Key::File(path), b)),
                _ => {
                    tracing::warn!(target: "tracelink_export", file = %name, "corrupt spool file skipped");
                    self.drop_file(&path, DropReason::Corrupt);
                }
            }
        }
        None
    }
}

impl Memory {
    pub(crate) fn new(max_bytes: u64, stats: Arc<Counters>) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            max_bytes,
            seq: AtomicU64::new(0),
            stats,
        }
    }
}

impl Store {
    /// Stores a batch; counts what cannot be kept.
    pub(crate) fn put(&self, batch: Batch) {
        match self {
            Store::Disk(d) => {
                if let Err(e) = d.put(&batch) {
                    tracing::warn!(target: "tracelink_export", error = %e, "spool write failed");
                    d.stats
                        .drop_items(DropReason::SpoolFull, u64::from(batch.count));
                }
            }
            Store::Memory(m) => {
                let mut q = m.queue.lock().unwrap_or_else(|e| e.into_inner());
                let mut total: u64 = q.iter().map(|(_, _, b)| b.gz.len() as u64).sum();
                while total + batch.gz.len() as u64 > m.max_bytes {
                    let Some((_, _, old)) = q.pop_front() else {
                        break;
                    };
                    total -= old.gz.len() as u64;
                    m.stats
                        .drop_items(DropReason::SpoolFull, u64::from(old.count));
                }
                let seq = m.seq.fetch_add(1, Relaxed);
                q.push_back((seq, SystemTime::now(), batch));
            }
        }
    }

    /// The oldest valid batch, without removing it.
    pub(crate) fn oldest(&self) -> Option<(Key, Batch)> {
        match self {
            Store::Disk(d) => d.oldest(),
            Store::Memory(m) => {
                let mut q = m.queue.lock().unwrap_or_else(|e| e.into_inner());
                while let Some((_, at, b)) = q.front() {
                    if SystemTime::now().duration_since(*at).unwrap_or_default() <= MAX_AGE {
                        break;
                    }
                    m.stats.drop_items(DropReason::Expired, u64::from(b.count));
                    q.pop_front();
                }
                q.front().map(|(k, _, b)| (Key::Memory(*k), b.clone()))
            }
        }
    }

    /// Removes a batch that was sent (or refused).
    pub(crate) fn remove(&self, key: &Key) {
        match (self, key) {
            (Store::Disk(d), Key::File(p)) => {
                let _g = d.lock.lock().unwrap_or_else(|e| e.into_inner());
                let _ = fs::remove_file(p);
                d.refresh_bytes();
            }
            (Store::Memory(m), Key::Memory(k)) => {
                m.queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|(s, _, _)| s != k);
            }
            _ => {}
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Store::Disk(d) => d.files().is_empty(),
            Store::Memory(m) => m.queue.lock().unwrap_or_else(|e| e.into_inner()).is_empty(),
        }
    }

    /// Whether batches survive the process.
    pub(crate) fn is_durable(&self) -> bool {
        matches!(self, Store::Disk(_))
    }

    /// Items held in memory (lost at exit).
    pub(crate) fn memory_items(&self) -> u64 {
        match self {
            Store::Disk(_) => 0,
            Store::Memory(m) => m
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(_, _, b)| u64::from(b.count))
                .sum(),
        }
    }
}

/// The default spool directory: `<tmp>/tracelink/<hash of ikey + program name>`.
pub(crate) fn default_dir(ikey: &str) -> PathBuf {
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ikey.bytes().chain([0]).chain(program.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir()
        .join("tracelink")
        .join(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u32, size: usize) -> Batch {
        let lines = "x".repeat(size);
        Batch::compress(lines.as_bytes(), n, 0)
    }

    #[test]
    fn disk_spool_orders_caps_and_skips_corrupt_files() {
        let dir = std::env::temp_dir().join(format!("tracelink-spool-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let stats = Arc::new(Counters::default());
        let b = batch(3, 1000);
        let cap = b.gz.len() as u64 * 2 + 10;
        let store = Store::Disk(Disk::open(&dir, cap, stats.clone()).unwrap());
        store.put(batch(1, 1000));
        store.put(batch(2, 1000));
        store.put(batch(3, 1000)); // over the cap: the oldest (1 item) goes
        let s = stats.snapshot();
        assert_eq!(s.dropped(DropReason::SpoolFull), 1);
        assert_eq!(s.spooled, 6);
        let (k, first) = store.oldest().unwrap();
        assert_eq!(first.count, 2, "oldest first");
        store.remove(&k);
        // A corrupt file is skipped, deleted and counted.
        fs::write(
            dir.join(format!("{:016}-1-00000000-7.trn", now_ms() - 10_000)),
            b"not gzip",
        )
        .unwrap();
        // And one older than 48 hours is deleted unsent.
        fs::write(dir.join(format!("{:016}-1-00000000-5.trn", 1)), &b.gz[..]).unwrap();
        let (_, next) = store.oldest().unwrap();
        assert_eq!(next.count, 3);
        let s = stats.snapshot();
        assert_eq!(
            (
                s.dropped(DropReason::Corrupt),
                s.dropped(DropReason::Expired)
            ),
            (7, 5)
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unusable_dir_is_an_error() {
        let file = std::env::temp_dir().join(format!("tracelink-not-a-dir-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        assert!(Disk::open(&file.join("sub"), 1 << 20, Arc::default()).is_err());
        let _ = fs::remove_file(&file);
    }
}
