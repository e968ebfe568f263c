//! Where batches wait while they cannot be sent: a directory of files (the disk spool, on by
//! default), or memory when the spool is off or unusable.
//!
//! Disk spool rules: a file per batch, written atomically (temp file in the exporter's own
//! claim directory, fsync, rename into the spool), named `<unix ms>-<exporter>-<seq>-<items>.trn`
//! so that names sort oldest first and never collide between exporters; at most `max_bytes`
//! in all, the oldest dropped first (counted); files older than 48 hours are deleted unsent
//! (counted); a file that is not valid gzip is deleted (counted).
//!
//! Sharing: several exporters (instances of one program, a rolling restart, containers
//! sharing `/tmp`) may use one directory. A batch is sent by whoever *claims* it first: the
//! claim is an atomic `rename` of the file into the claimant's own directory,
//! `.claims/<exporter>/`, which only one rename can win. Each exporter holds an exclusive
//! `flock` on `.claims/<exporter>.lock` for as long as it lives; the kernel releases it when
//! the process ends, SIGKILL included. So a lock that can be taken belongs to an exporter
//! that is gone, and whoever takes it moves that exporter's claimed files back into the
//! spool, at start and then every [`RECOVER_EVERY`] while sending. The lock file is locked
//! before it is given its name, so a visible lock file is never free while its exporter
//! lives. `flock` works across processes and containers on one kernel, whatever their pid
//! namespaces; the directory must be on a filesystem that supports it.
//!
//! The memory store follows the same rules, but for durability and sharing.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::Batch;
use crate::stats::{Counters, DropReason};

/// Oldest batch ingestion accepts.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(48 * 3600);
/// How often a sending exporter looks for the claims of exporters that are gone.
pub(crate) const RECOVER_EVERY: Duration = Duration::from_secs(30);
const SUFFIX: &str = ".trn";
const CLAIMS: &str = ".claims";
const LOCK: &str = ".lock";
/// A lock file being made: it has no final name yet.
const LOCK_TMP: &str = ".lock.tmp";

/// A stored batch's handle: owned by its holder until removed or released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// The claimed file, in this exporter's claim directory.
    File(PathBuf),
    /// A batch taken from the memory store, and where it goes back.
    Memory { seq: u64, at: SystemTime },
}

#[derive(Debug)]
pub(crate) enum Store {
    Disk(Disk),
    Memory(Memory),
}

#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    /// This exporter's id: in its file names, claim directory and lock file.
    id: String,
    /// `.claims/<id>/`: the batches this exporter is sending, and files being written.
    own: PathBuf,
    /// `.claims/<id>.lock`, locked for the exporter's life.
    lock_path: PathBuf,
    _lock: fs::File,
    max_bytes: u64,
    seq: AtomicU64,
    writing: Mutex<()>,
    recovered_at: Mutex<Instant>,
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

fn expired(written: SystemTime) -> bool {
    SystemTime::now()
        .duration_since(written)
        .unwrap_or_default()
        > MAX_AGE
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > age)
}

/// Takes the exclusive lock on `file` without waiting: `Ok(false)` when someone holds it.
fn try_lock(file: &fs::File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Disk {
    /// Opens (creating) a spool directory and takes this exporter's claim on it; `Err` when
    /// it is unusable (not writable, or without `flock`).
    pub(crate) fn open(dir: &Path, max_bytes: u64, stats: Arc<Counters>) -> io::Result<Self> {
        let claims = dir.join(CLAIMS);
        fs::create_dir_all(&claims)?;
        let id = format!("{:016x}", tracelink_core::SpanId::random().to_u64());
        // Locked under a temporary name, then named: a lock file that others can see is
        // held for as long as its exporter lives.
        let tmp = claims.join(format!("{id}{LOCK_TMP}"));
        let lock = fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let locked = try_lock(&lock).and_then(|ok| {
            ok.then_some(())
                .ok_or_else(|| io::Error::other("a new lock file is locked already"))
        });
        if let Err(e) = locked {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let lock_path = claims.join(format!("{id}{LOCK}"));
        fs::rename(&tmp, &lock_path)?;
        let own = claims.join(&id);
        fs::create_dir(&own)?;
        let disk = Self {
            dir: dir.to_owned(),
            id,
            own,
            lock_path,
            _lock: lock,
            max_bytes,
            seq: AtomicU64::new(0),
            writing: Mutex::new(()),
            recovered_at: Mutex::new(Instant::now()),
            stats,
        };
        // Temp files of another layout, left by a killed process, are incomplete.
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().ends_with(".tmp")
                && older_than(&path, Duration::from_secs(3600))
            {
                let _ = fs::remove_file(path);
            }
        }
        disk.recover();
        disk.refresh_bytes();
        Ok(disk)
    }

    /// Spool files not claimed by anyone, oldest first, with their sizes.
    fn files(&self) -> Vec<(PathBuf, u64)> {
        let mut files: Vec<(PathBuf, u64)> = fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| parse_name(&e.file_name().to_string_lossy()).is_some())
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
        // Whoever removes it counts it: several exporters may try at once.
        if fs::remove_file(path).is_ok() {
            self.stats.drop_items(reason, count);
        }
    }

    /// Takes over the claims of exporters that are gone, when [`RECOVER_EVERY`] has passed.
    fn maybe_recover(&self) {
        {
            let mut at = self.recovered_at.lock().unwrap_or_else(|e| e.into_inner());
            if at.elapsed() < RECOVER_EVERY {
                return;
            }
            *at = Instant::now();
        }
        self.recover();
    }

    /// Moves the claimed files of every exporter that is gone back into the spool.
    fn recover(&self) {
        let claims = self.dir.join(CLAIMS);
        let Ok(entries) = fs::read_dir(&claims) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(id) = name.strip_suffix(LOCK) {
                if id == self.id {
                    continue;
                }
                // Open fails when another exporter just took it over: nothing to do.
                let Ok(file) = fs::File::options().write(true).open(&path) else {
                    continue;
                };
                if try_lock(&file).unwrap_or(false) {
                    // Its exporter is gone, and its claims are ours to give back.
                    self.count_recovered(self.take_over(&claims.join(id)));
                    let _ = fs::remove_file(&path);
                }
            } else if name.ends_with(LOCK_TMP) {
                // Made by an exporter killed before it named it (or one starting now).
                if older_than(&path, Duration::from_secs(60))
                    && let Ok(file) = fs::File::options().write(true).open(&path)
                    && try_lock(&file).unwrap_or(false)
                {
                    let _ = fs::remove_file(&path);
                }
            } else if name != self.id
                && entry.file_type().is_ok_and(|t| t.is_dir())
                && !claims.join(format!("{name}{LOCK}")).exists()
            {
                // A lock file is named before its directory is made, and removed after it
                // is emptied: a directory without one is left from a takeover cut short.
                self.count_recovered(self.take_over(&path));
            }
        }
    }

    fn count_recovered(&self, batches: u64) {
        if batches > 0 {
            self.stats.recovered.fetch_add(batches, Relaxed);
            tracing::debug!(target: "tracelink_export", batches,
                "took over the spooled batches of an exporter that stopped while sending them");
        }
    }

    /// Moves the batches of a claim directory back into the spool, and removes it; how many
    /// it moved.
    fn take_over(&self, claim: &Path) -> u64 {
        let mut batches = 0u64;
        if let Ok(entries) = fs::read_dir(claim) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if parse_name(&name.to_string_lossy()).is_some() {
                    if fs::rename(entry.path(), self.dir.join(&name)).is_ok() {
                        batches += 1;
                    }
                } else {
                    // Half-written files.
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let _ = fs::remove_dir(claim);
        batches
    }

    fn put(&self, batch: &Batch) -> io::Result<()> {
        let _g = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let size = batch.gz.len() as u64;
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|(_, n)| n).sum();
        while total + size > self.max_bytes && !files.is_empty() {
            let (oldest, n) = files.remove(0);
            tracing::debug!(target: "tracelink_export", "spool is full: dropping its oldest batch");
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
            self.id,
            batch.count
        );
        // Written where no other exporter looks, then renamed into the spool whole.
        let tmp = self.own.join(format!("{name}.tmp"));
        let mut f = match fs::File::create(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Our directory was removed from under us (a /tmp cleaner): make it again.
                fs::create_dir_all(&self.own)?;
                fs::File::create(&tmp)?
            }
            other => other?,
        };
        let written = f.write_all(&batch.gz).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, self.dir.join(&name))) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.stats
            .spooled
            .fetch_add(u64::from(batch.count), Relaxed);
        self.stats.spool_bytes.store(total + size, Relaxed);
        Ok(())
    }

    /// Claims the oldest valid batch: moves it into this exporter's claim directory.
    fn claim(&self) -> Option<(Key, Batch)> {
        self.maybe_recover();
        for (path, _) in self.files() {
            let name = path.file_name()?.to_owned();
            let Some((written, count)) = parse_name(&name.to_string_lossy()) else {
                continue;
            };
            if expired(written) {
                self.drop_file(&path, DropReason::Expired);
                continue;
            }
            let claimed = self.own.join(&name);
            if fs::rename(&path, &claimed).is_err() {
                // Another exporter claimed it first (or dropped it).
                continue;
            }
            let batch = fs::read(&claimed).ok().map(|gz| Batch {
                gz: Bytes::from(gz),
                count: count as u32,
            });
            match batch {
                Some(b) if b.lines().is_some() => {
                    self.refresh_bytes();
                    return Some((Key::File(claimed), b));
                }
                _ => {
                    tracing::debug!(target: "tracelink_export", file = %name.to_string_lossy(),
                        "corrupt spool file deleted");
                    self.drop_file(&claimed, DropReason::Corrupt);
                }
            }
        }
        None
    }

    /// Gives a claimed batch back to the spool, for whoever sends next.
    fn release(&self, claimed: &Path) {
        if let Some(name) = claimed.file_name() {
            let _ = fs::rename(claimed, self.dir.join(name));
        }
        self.refresh_bytes();
    }
}

impl Drop for Disk {
    /// Gives back what is still claimed, and removes the claim: nothing is left to take
    /// over.
    fn drop(&mut self) {
        // Not counted as recovered: that is for the claims of exporters that could not.
        self.take_over(&self.own);
        let _ = fs::remove_file(&self.lock_path);
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

    fn bytes(q: &VecDeque<(u64, SystemTime, Batch)>) -> u64 {
        q.iter().map(|(_, _, b)| b.gz.len() as u64).sum()
    }
}

impl Store {
    /// Stores a batch; counts what cannot be kept.
    pub(crate) fn put(&self, batch: Batch) {
        match self {
            Store::Disk(d) => {
                if let Err(e) = d.put(&batch) {
                    tracing::debug!(target: "tracelink_export", error = %e, "spool write failed");
                    d.stats
                        .drop_items(DropReason::SpoolFull, u64::from(batch.count));
                }
            }
            Store::Memory(m) => {
                let mut q = m.queue.lock().unwrap_or_else(|e| e.into_inner());
                let mut total = Memory::bytes(&q);
                while total + batch.gz.len() as u64 > m.max_bytes {
                    let Some((_, _, old)) = q.pop_front() else {
                        break;
                    };
                    total -= old.gz.len() as u64;
                    m.stats
                        .drop_items(DropReason::SpoolFull, u64::from(old.count));
                }
                let seq = m.seq.fetch_add(1, Relaxed);
                m.stats.spooled.fetch_add(u64::from(batch.count), Relaxed);
                m.stats
                    .spool_bytes
                    .store(total + batch.gz.len() as u64, Relaxed);
                q.push_back((seq, SystemTime::now(), batch));
            }
        }
    }

    /// Takes the oldest valid batch for sending: no one else gets it until it is released.
    pub(crate) fn claim(&self) -> Option<(Key, Batch)> {
        match self {
            Store::Disk(d) => d.claim(),
            Store::Memory(m) => {
                let mut q = m.queue.lock().unwrap_or_else(|e| e.into_inner());
                while let Some((seq, at, b)) = q.pop_front() {
                    if expired(at) {
                        m.stats.drop_items(DropReason::Expired, u64::from(b.count));
                        continue;
                    }
                    m.stats.spool_bytes.store(Memory::bytes(&q), Relaxed);
                    return Some((Key::Memory { seq, at }, b));
                }
                m.stats.spool_bytes.store(0, Relaxed);
                None
            }
        }
    }

    /// Removes a claimed batch that was sent (or refused).
    pub(crate) fn remove(&self, key: &Key) {
        if let (Store::Disk(d), Key::File(p)) = (self, key) {
            let _ = fs::remove_file(p);
            d.refresh_bytes();
        }
        // A memory batch left the queue when it was claimed.
    }

    /// Gives a claimed batch back, to be sent later.
    pub(crate) fn release(&self, key: Key, batch: Batch) {
        match (self, key) {
            (Store::Disk(d), Key::File(p)) => d.release(&p),
            (Store::Memory(m), Key::Memory { seq, at }) => {
                let mut q = m.queue.lock().unwrap_or_else(|e| e.into_inner());
                let i = q.partition_point(|(s, _, _)| *s < seq);
                q.insert(i, (seq, at, batch));
                m.stats.spool_bytes.store(Memory::bytes(&q), Relaxed);
            }
            (store, _) => store.put(batch),
        }
    }

    /// Whether nothing waits to be claimed (by this exporter or another).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Store::Disk(d) => {
                d.maybe_recover();
                d.files().is_empty()
            }
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

    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tracelink-spool-test-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn disk_spool_orders_caps_and_skips_corrupt_files() {
        let dir = test_dir("order");
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
        let (k, first) = store.claim().unwrap();
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
        let (_, next) = store.claim().unwrap();
        assert_eq!(next.count, 3);
        let s = stats.snapshot();
        assert_eq!(
            (
                s.dropped(DropReason::Corrupt),
                s.dropped(DropReason::Expired)
            ),
            (7, 5)
        );
        drop(store);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Two exporters on one directory never hold the same batch; what one claimed goes
    /// back when it is released or the exporter goes away.
    #[test]
    fn claims_are_exclusive_and_given_back() {
        let dir = test_dir("claims");
        let stats = Arc::new(Counters::default());
        let a = Store::Disk(Disk::open(&dir, 1 << 20, stats.clone()).unwrap());
        let b = Store::Disk(Disk::open(&dir, 1 << 20, stats.clone()).unwrap());
        for n in 1..=3 {
            a.put(batch(n, 100));
        }
        let (ka, first) = a.claim().unwrap();
        let (kb, second) = b.claim().unwrap();
        assert_eq!((first.count, second.count), (1, 2), "each takes its own");
        b.release(kb, second);
        let (_, again) = b.claim().unwrap();
        assert_eq!(again.count, 2, "released, then claimable again");
        let (kb3, third) = a.claim().unwrap();
        assert_eq!(third.count, 3);
        assert!(a.claim().is_none() && b.claim().is_none());
        a.remove(&ka);
        a.release(kb3, third);
        // A live exporter's claims are never taken over.
        if let Store::Disk(d) = &a {
            d.recover();
        }
        drop(b); // gives back its claim (the batch of 2)
        let mut left: Vec<u32> = std::iter::from_fn(|| a.claim().map(|(_, b)| b.count)).collect();
        left.sort();
        assert_eq!(left, [2, 3]);
        assert_eq!(stats.snapshot().recovered, 0, "nobody died");
        drop(a);
        assert_eq!(
            names(&dir.join(CLAIMS)),
            Vec::<String>::new(),
            "no claim left"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// The claims of an exporter whose lock is free (its process is gone) are taken over
    /// by the next one to look; those of a live one are not.
    #[test]
    fn stale_claims_are_taken_over() {
        let dir = test_dir("stale");
        let stats = Arc::new(Counters::default());
        let claims = dir.join(CLAIMS);
        fs::create_dir_all(claims.join("dead")).unwrap();
        fs::write(claims.join("dead.lock"), b"").unwrap();
        let b = batch(4, 100);
        let name = format!("{:016}-dead-00000000-4.trn", now_ms());
        fs::write(claims.join("dead").join(&name), &b.gz[..]).unwrap();
        fs::write(claims.join("dead").join("half.trn.tmp"), b"x").unwrap();
        // A directory whose lock file is gone is left over too.
        fs::create_dir_all(claims.join("orphan")).unwrap();
        let orphan = format!("{:016}-orphan-00000000-2.trn", now_ms());
        fs::write(claims.join("orphan").join(&orphan), &batch(2, 10).gz[..]).unwrap();
        // A live exporter's lock is held.
        let live = Disk::open(&dir, 1 << 20, stats.clone()).unwrap();
        let held = Store::Disk(live);
        let (k, claimed) = held.claim().unwrap();
        assert_eq!(claimed.count, 4, "recovered at start, then claimed");
        assert_eq!(stats.snapshot().recovered, 2);
        let other = Store::Disk(Disk::open(&dir, 1 << 20, stats.clone()).unwrap());
        let (_, next) = other.claim().unwrap();
        assert_eq!(next.count, 2);
        assert!(
            other.claim().is_none(),
            "the live claim stays with its exporter"
        );
        held.remove(&k);
        assert!(!claims.join("dead").exists() && !claims.join("dead.lock").exists());
        drop((held, other));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_claims_go_back_in_order() {
        let stats = Arc::new(Counters::default());
        let m = Store::Memory(Memory::new(1 << 20, stats.clone()));
        for n in 1..=3 {
            m.put(batch(n, 10));
        }
        let (k1, b1) = m.claim().unwrap();
        let (k2, b2) = m.claim().unwrap();
        m.release(k2, b2);
        m.release(k1, b1);
        let order: Vec<u32> = std::iter::from_fn(|| m.claim().map(|(_, b)| b.count)).collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(m.is_empty());
    }

    #[test]
    fn unusable_dir_is_an_error() {
        let file = std::env::temp_dir().join(format!("tracelink-not-a-dir-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        assert!(Disk::open(&file.join("sub"), 1 << 20, Arc::default()).is_err());
        let _ = fs::remove_file(&file);
    }
}
