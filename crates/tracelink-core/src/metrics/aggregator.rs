//! The aggregator: series by name and dimension values, each a striped running aggregate.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::AGGREGATION_INTERVAL_PROPERTY;
use crate::model::{DataPoint, Metric, Telemetry};

/// Most dimensions of one series, as in the .NET SDK. A tracker given more records nothing.
pub const MAX_DIMENSIONS: usize = 10;

/// The default cap on the dimension combinations of one metric.
pub const DEFAULT_SERIES_PER_METRIC: usize = 1000;

/// The default cap on the series of one aggregator, all metrics together.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// Locks over the map of series; a series is in the shard its hash names.
const SHARDS: usize = 16;
/// Most stripes of one series.
const MAX_STRIPES: usize = 16;
/// Series each thread remembers (direct-mapped by hash).
const CACHE_SLOTS: usize = 32;
/// Attempts to record into a series that a collection removed at the same moment.
const ATTEMPTS: usize = 3;

/// The caps of an aggregator (see the [module docs](super#caps)).
///
/// ```
/// use tracelink_core::metrics::{MetricAggregator, MetricLimits};
///
/// let mut limits = MetricLimits::default();
/// limits.series_per_metric = 2;
/// let metrics = MetricAggregator::with_limits(limits);
/// assert!(metrics.metric("m").dimension("k", "a").track(1.0));
/// assert!(metrics.metric("m").dimension("k", "b").track(1.0));
/// assert!(!metrics.metric("m").dimension("k", "c").track(1.0));
/// assert_eq!(metrics.stats().values_over_cap, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricLimits {
    /// Most dimension combinations of one metric (name and namespace).
    pub series_per_metric: usize,
    /// Most series in all.
    pub max_series: usize,
}

impl Default for MetricLimits {
    fn default() -> Self {
        Self {
            series_per_metric: DEFAULT_SERIES_PER_METRIC,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// The counters of an aggregator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricStats {
    /// Series held now.
    pub series: usize,
    /// Values not recorded under their own dimension values because a cap was reached
    /// (the standard metrics recorded them under `Other`; custom metrics dropped them).
    pub values_over_cap: u64,
    /// Values not recorded because they were not finite, the name was empty, or there were
    /// more than [`MAX_DIMENSIONS`] dimensions.
    pub values_invalid: u64,
}

/// Count, sum, mean and squared deviations of one stripe (Welford's method, merged with
/// Chan's formula), with min and max.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Acc {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    mean: f64,
    m2: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Acc {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.sum += x;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn merge(&mut self, o: &Acc) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        let (na, nb) = (self.count as f64, o.count as f64);
        let n = na + nb;
        let delta = o.mean - self.mean;
        self.m2 += o.m2 + delta * delta * na * nb / n;
        self.mean += delta * nb / n;
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The population standard deviation, as the SDKs send it.
    pub(crate) fn std_dev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.m2 / self.count as f64).max(0.0).sqrt()
    }
}

/// One stripe on a cache line of its own.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Stripe(Mutex<Acc>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data valid: a panic elsewhere changes nothing.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The identity of a series: namespace, name, dimensions sorted by key.
#[derive(Debug)]
struct SeriesKey {
    namespace: Box<str>,
    name: Box<str>,
    dims: Box<[(Box<str>, Box<str>)]>,
}

/// A series' identity, borrowed.
#[derive(Clone, Copy, Debug)]
struct KeyRef<'a> {
    namespace: &'a str,
    name: &'a str,
    dims: &'a [(&'a str, &'a str)],
}

/// The bytes after the last full eight of `c` (fewer than 8) as one word, read without a
/// copy: two overlapping 4-byte reads, or the first, middle and last byte. Two tails of the
/// same length are equal exactly when their words are (the reads cover every byte).
#[inline]
fn tail(c: &[u8]) -> u64 {
    let n = c.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[n - 4], c[n - 3], c[n - 2], c[n - 1]]);
        u64::from(lo) | u64::from(hi) << 32
    } else if n > 0 {
        u64::from(c[0]) | u64::from(c[n / 2]) << 8 | u64::from(c[n - 1]) << 16
    } else {
        0
    }
}

/// The words of `s`: its full eight-byte chunks, then its [`tail`].
#[inline]
fn words(s: &[u8]) -> (std::slice::ChunksExact<'_, u8>, u64) {
    let chunks = s.chunks_exact(8);
    let t = tail(chunks.remainder());
    (chunks, t)
}

#[inline]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_le_bytes(w)
}

/// Whether two strings are equal, compared a word at a time without a call to `memcmp`
/// (whose call costs more than comparing a short name).
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let ((ca, ta), (cb, tb)) = (words(a), words(b));
    ta == tb && ca.zip(cb).all(|(x, y)| word(x) == word(y))
}

impl SeriesKey {
    fn matches(&self, k: &KeyRef<'_>) -> bool {
        same(&self.name, k.name)
            && same(&self.namespace, k.namespace)
            && self.dims.len() == k.dims.len()
            && self
                .dims
                .iter()
                .zip(k.dims)
                .all(|((a, b), (c, d))| same(a, c) && same(b, d))
    }

    fn from_ref(k: &KeyRef<'_>) -> Self {
        Self {
            namespace: k.namespace.into(),
            name: k.name.into(),
            dims: k
                .dims
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
        }
    }

    /// The dimensions as borrowed pairs, in `buf`.
    fn with_ref<R>(&self, f: impl FnOnce(&KeyRef<'_>) -> R) -> R {
        let mut buf = [("", ""); MAX_DIMENSIONS];
        for (slot, (a, b)) in buf.iter_mut().zip(self.dims.iter()) {
            *slot = (a, b);
        }
        f(&KeyRef {
            namespace: &self.namespace,
            name: &self.name,
            dims: &buf[..self.dims.len()],
        })
    }
}

/// One series: its identity and its striped aggregate.
#[derive(Debug)]
struct Series {
    aggregator: u64,
    hash: u64,
    key: SeriesKey,
    stripes: Box<[Stripe]>,
    /// Set while every stripe is locked, when a collection removes the series: a writer
    /// that sees it under its stripe's lock records into the series' successor instead.
    removed: AtomicBool,
}

impl Series {
    /// Adds `x` in the stripe of `thread`; `false` when the series was removed.
    fn add(&self, thread: usize, x: f64) -> bool {
        let mut acc = lock(&self.stripes[thread & (self.stripes.len() - 1)].0);
        if self.removed.load(Relaxed) {
            return false;
        }
        acc.add(x);
        true
    }

    /// Takes the interval's aggregate, leaving the stripes empty. A series that had no value
    /// is marked removed (the caller takes it out of the map) and gives `None`.
    fn take_or_remove(&self) -> Option<Acc> {
        let mut guards: Vec<_> = self.stripes.iter().map(|s| lock(&s.0)).collect();
        let mut total = Acc::default();
        for g in &mut guards {
            total.merge(g);
            **g = Acc::default();
        }
        if total.count == 0 {
            self.removed.store(true, Relaxed);
            return None;
        }
        Some(total)
    }
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type SeriesMap = HashMap<u64, Vec<Arc<Series>>, BuildHasherDefault<Prehashed>>;

#[repr(align(64))]
#[derive(Debug, Default)]
struct Shard(Mutex<SeriesMap>);

/// A fast seeded hash over the key's bytes (FxHash's step, lengths mixed in so that
/// `("ab","c")` and `("a","bc")` differ).
struct KeyHasher(u64);

impl KeyHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    fn str(&mut self, s: &str) {
        self.word(s.len() as u64);
        let (chunks, t) = words(s.as_bytes());
        for c in chunks {
            self.word(word(c));
        }
        self.word(t);
    }

    fn key(seed: u64, k: &KeyRef<'_>) -> u64 {
        let mut h = Self(seed);
        h.str(k.namespace);
        h.str(k.name);
        for (a, b) in k.dims {
            h.str(a);
            h.str(b);
        }
        // A final avalanche, so that the low bits (the shard, the cache slot) vary.
        let mut x = h.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// What each thread keeps: its stripe number and the series it tracked last.
struct Local {
    stripe: usize,
    slots: [Option<Arc<Series>>; CACHE_SLOTS],
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
static NEXT_AGGREGATOR: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local {
        stripe: NEXT_STRIPE.fetch_add(1, Relaxed),
        slots: Default::default(),
    });
}

fn thread_stripe() -> usize {
    LOCAL.try_with(|l| l.borrow().stripe).unwrap_or(0)
}

/// A metric's namespace and name.
type MetricId = (Box<str>, Box<str>);

#[derive(Debug)]
struct Inner {
    id: u64,
    seed: u64,
    stripes: usize,
    shards: Box<[Shard]>,
    limits: MetricLimits,
    /// Series per metric (namespace, name); changed only with a series.
    per_metric: Mutex<HashMap<MetricId, usize>>,
    total: AtomicUsize,
    over_cap: AtomicU64,
    invalid: AtomicU64,
    /// When the current interval started.
    period_start: Mutex<SystemTime>,
}

/// Why a value was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    OverCap,
    Invalid,
}

impl Inner {
    fn refuse(&self, why: Refused) {
        match why {
            Refused::OverCap => self.over_cap.fetch_add(1, Relaxed),
            Refused::Invalid => self.invalid.fetch_add(1, Relaxed),
        };
    }

    /// Records `x` into the series of `key`, creating it (within the caps unless
    /// `uncapped`).
    fn record(&self, key: &KeyRef<'_>, x: f64, uncapped: bool) -> Result<(), Refused> {
        if !x.is_finite() || key.name.is_empty() {
            return Err(Refused::Invalid);
        }
        let hash = KeyHasher::key(self.seed, key);
        let slot = (hash as usize) % CACHE_SLOTS;
        // The thread's cache: no shared lock, no allocation.
        let cached = LOCAL.try_with(|l| {
            let l = l.borrow();
            match &l.slots[slot] {
                Some(s) if s.aggregator == self.id && s.hash == hash && s.key.matches(key) => {
                    s.add(l.stripe, x)
                }
                _ => false,
            }
        });
        if cached == Ok(true) {
            return Ok(());
        }
        let stripe = thread_stripe();
        for _ in 0..ATTEMPTS {
            let series = self.find_or_insert(key, hash, uncapped)?;
            if series.add(stripe, x) {
                let _ = LOCAL.try_with(|l| l.borrow_mut().slots[slot] = Some(series));
                return Ok(());
            }
        }
        // Removed three times over while we recorded: a collection every few microseconds.
        Err(Refused::OverCap)
    }

    fn find_or_insert(
        &self,
        key: &KeyRef<'_>,
        hash: u64,
        uncapped: bool,
    ) -> Result<Arc<Series>, Refused> {
        let mut map = lock(&self.shards[(hash as usize) % SHARDS].0);
        let list = map.entry(hash).or_default();
        if let Some(s) = list.iter().find(|s| s.key.matches(key)) {
            return Ok(s.clone());
        }
        let mut per_metric = lock(&self.per_metric);
        if !uncapped {
            let of_metric = per_metric
                .get(&(key.namespace.into(), key.name.into()))
                .copied()
                .unwrap_or(0);
            if of_metric >= self.limits.series_per_metric
                || self.total.load(Relaxed) >= self.limits.max_series
            {
                return Err(Refused::OverCap);
            }
        }
        *per_metric
            .entry((key.namespace.into(), key.name.into()))
            .or_default() += 1;
        self.total.fetch_add(1, Relaxed);
        let series = Arc::new(Series {
            aggregator: self.id,
            hash,
            key: SeriesKey::from_ref(key),
            stripes: (0..self.stripes).map(|_| Stripe::default()).collect(),
            removed: AtomicBool::new(false),
        });
        list.push(series.clone());
        Ok(series)
    }

    fn forget(&self, key: &SeriesKey) {
        let mut per_metric = lock(&self.per_metric);
        let k = (key.namespace.clone(), key.name.clone());
        if let Some(n) = per_metric.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                per_metric.remove(&k);
            }
        }
        self.total.fetch_sub(1, Relaxed);
    }
}

/// Pre-aggregates metric values by name and dimension values (see the [module
/// docs](super)). Cheap to clone: clones share the series.
#[derive(Clone)]
pub struct MetricAggregator {
    inner: Arc<Inner>,
}

impl fmt::Debug for MetricAggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricAggregator")
            .field("limits", &self.inner.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for MetricAggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricAggregator {
    /// An aggregator with the default caps; its first interval starts now.
    pub fn new() -> Self {
        Self::with_limits(MetricLimits::default())
    }

    /// An aggregator with these caps.
    pub fn with_limits(limits: MetricLimits) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0u8)
        };
        Self {
            inner: Arc::new(Inner {
                id: NEXT_AGGREGATOR.fetch_add(1, Relaxed),
                seed,
                stripes: threads.next_power_of_two().min(MAX_STRIPES),
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                limits,
                per_metric: Mutex::new(HashMap::new()),
                total: AtomicUsize::new(0),
                over_cap: AtomicU64::new(0),
                invalid: AtomicU64::new(0),
                period_start: Mutex::new(SystemTime::now()),
            }),
        }
    }

    /// The caps.
    pub fn limits(&self) -> MetricLimits {
        self.inner.limits
    }

    /// A tracker for the metric `name`, to give dimensions and track values.
    #[inline]
    pub fn metric<'a>(&'a self, name: &'a str) -> MetricTracker<'a> {
        MetricTracker::new(Target::Borrowed(self), name)
    }

    /// Like [`MetricAggregator::metric`], holding the aggregator instead of borrowing it.
    #[inline]
    pub fn into_metric(self, name: &str) -> MetricTracker<'_> {
        MetricTracker::new(Target::Owned(self), name)
    }

    /// Records `value` under `dims` without a cap, for the standard metrics' `Other`.
    pub(crate) fn record(
        &self,
        name: &str,
        dims: &[(&str, &str)],
        value: f64,
        uncapped: bool,
    ) -> Result<(), Refused> {
        let r = self.inner.record(
            &KeyRef {
                namespace: "",
                name,
                dims,
            },
            value,
            uncapped,
        );
        if let Err(why) = r {
            self.inner.refuse(why);
        }
        r
    }

    /// The counters.
    pub fn stats(&self) -> MetricStats {
        MetricStats {
            series: self.inner.total.load(Relaxed),
            values_over_cap: self.inner.over_cap.load(Relaxed),
            values_invalid: self.inner.invalid.load(Relaxed),
        }
    }

    /// Ends the current interval at `now`: one `Metric` item per series that received
    /// values, timed at the interval's start, with the dimensions as properties and
    /// [`AGGREGATION_INTERVAL_PROPERTY`]; the aggregates start again from zero. Series that
    /// received nothing in the interval are removed.
    pub fn collect(&self, now: SystemTime) -> Vec<Telemetry> {
        let start = std::mem::replace(&mut *lock(&self.inner.period_start), now);
        let interval_ms = now
            .duration_since(start)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let mut items = Vec::new();
        for shard in self.inner.shards.iter() {
            let mut map = lock(&shard.0);
            map.retain(|_, list| {
                list.retain(|s| match s.take_or_remove() {
                    Some(acc) => {
                        items.push(to_item(&s.key, &acc, start, &interval_ms));
                        true
                    }
                    None => {
                        self.inner.forget(&s.key);
                        false
                    }
                });
                !list.is_empty()
            });
        }
        items
    }
}

fn to_item(key: &SeriesKey, acc: &Acc, start: SystemTime, interval_ms: &str) -> Telemetry {
    let mut point = DataPoint::new(&*key.name, acc.sum);
    point.namespace = key.namespace.to_string();
    point.count = Some(acc.count);
    point.min = Some(acc.min);
    point.max = Some(acc.max);
    point.std_dev = Some(acc.std_dev());
    let mut item = Telemetry::new(Metric {
        metrics: vec![point],
    });
    item.time = start;
    let mut props: BTreeMap<String, String> = key
        .dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    props.insert(AGGREGATION_INTERVAL_PROPERTY.into(), interval_ms.into());
    item.properties = props;
    item
}

/// Where a tracker records.
#[derive(Clone, Debug)]
enum Target<'a> {
    Inactive,
    Borrowed(&'a MetricAggregator),
    Owned(MetricAggregator),
}

/// A metric name with dimension values, to track values on. From
/// [`MetricAggregator::metric`], or `tracelink`'s `Client::metric`.
///
/// ```
/// use tracelink_core::metrics::MetricAggregator;
///
/// let metrics = MetricAggregator::new();
/// let orders = metrics.metric("queue.depth").dimension("queue", "orders");
/// assert!(orders.track(3.0));
/// assert!(orders.track(4.0));
/// assert!(!orders.track(f64::NAN));
/// // The order of the dimensions does not matter; a key given twice keeps its last value.
/// let m = metrics.metric("m").dimension("b", "2").dimension("a", "1").dimension("b", "3");
/// assert!(m.track(1.0));
/// assert!(metrics.metric("m").dimension("a", "1").dimension("b", "3").track(1.0));
/// assert_eq!(metrics.stats().series, 2);
/// ```
#[derive(Clone, Debug)]
pub struct MetricTracker<'a> {
    target: Target<'a>,
    namespace: &'a str,
    name: &'a str,
    /// Sorted by key, keys unique.
    dims: [(&'a str, &'a str); MAX_DIMENSIONS],
    len: usize,
    too_many: bool,
}

impl<'a> MetricTracker<'a> {
    #[inline]
    fn new(target: Target<'a>, name: &'a str) -> Self {
        Self {
            target,
            namespace: "",
            name,
            dims: [("", ""); MAX_DIMENSIONS],
            len: 0,
            too_many: false,
        }
    }

    /// A tracker that records nothing (`track` returns `false`): what `tracelink`'s free
    /// functions give before the setup starts and after it stops.
    #[inline]
    pub fn inactive(name: &'a str) -> Self {
        Self::new(Target::Inactive, name)
    }

    /// The metric's namespace (`ns` in the envelope; empty by default).
    #[inline]
    pub fn namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = namespace;
        self
    }

    /// A dimension: sent as a property of the metric's item, and a series of its own for
    /// each combination of values. At most [`MAX_DIMENSIONS`]; with more, nothing is
    /// recorded.
    // Inlined, the insertion out of line: fewer copies of the tracker (its dimensions are an
    // array) along a chain of builder calls.
    #[inline]
    pub fn dimension(mut self, key: &'a str, value: &'a str) -> Self {
        self.add_dimension(key, value);
        self
    }

    fn add_dimension(&mut self, key: &'a str, value: &'a str) {
        let dims = &mut self.dims[..self.len];
        match dims.binary_search_by(|(k, _)| (*k).cmp(key)) {
            Ok(i) => dims[i].1 = value,
            Err(_) if self.len == MAX_DIMENSIONS => self.too_many = true,
            Err(i) => {
                self.dims.copy_within(i..self.len, i + 1);
                self.dims[i] = (key, value);
                self.len += 1;
            }
        }
    }

    fn aggregator(&self) -> Option<&MetricAggregator> {
        match &self.target {
            Target::Inactive => None,
            Target::Borrowed(a) => Some(a),
            Target::Owned(a) => Some(a),
        }
    }

    fn key(&self) -> KeyRef<'_> {
        KeyRef {
            namespace: self.namespace,
            name: self.name,
            dims: &self.dims[..self.len],
        }
    }

    /// Adds `value` to the current interval's aggregate of this name and these dimension
    /// values. `false` when it was not recorded: not finite, a cap reached (see the [module
    /// docs](super#caps)), or no running setup.
    pub fn track(&self, value: f64) -> bool {
        let Some(a) = self.aggregator() else {
            return false;
        };
        let r = if self.too_many {
            Err(Refused::Invalid)
        } else {
            a.inner.record(&self.key(), value, false)
        };
        if let Err(why) = r {
            a.inner.refuse(why);
        }
        r.is_ok()
    }

    /// The series of this name and these dimension values, to track values without looking
    /// the series up each time. `None` when there is none and a cap keeps it from being
    /// made, for an invalid name or dimensions, and without a running setup.
    ///
    /// ```
    /// use tracelink_core::metrics::MetricAggregator;
    ///
    /// let metrics = MetricAggregator::new();
    /// let latency = metrics.metric("db.latency").dimension("db", "orders").series().unwrap();
    /// assert!(latency.track(2.5));
    /// ```
    pub fn series(&self) -> Option<MetricSeries> {
        let a = self.aggregator()?;
        if self.too_many || self.name.is_empty() {
            a.inner.refuse(Refused::Invalid);
            return None;
        }
        let key = self.key();
        let hash = KeyHasher::key(a.inner.seed, &key);
        match a.inner.find_or_insert(&key, hash, false) {
            Ok(series) => Some(MetricSeries {
                aggregator: a.clone(),
                series,
            }),
            Err(why) => {
                a.inner.refuse(why);
                None
            }
        }
    }
}

/// One series (a name and dimension values), held for tracking values without a look-up.
/// Cheap to clone; every clone tracks into the same series.
#[derive(Clone)]
pub struct MetricSeries {
    aggregator: MetricAggregator,
    series: Arc<Series>,
}

impl fmt::Debug for MetricSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSeries")
            .field("name", &self.series.key.name)
            .field("dimensions", &self.series.key.dims)
            .finish_non_exhaustive()
    }
}

impl MetricSeries {
    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.series.key.name
    }

    /// Adds `value` to the current interval's aggregate. `false` when it was not recorded:
    /// not finite, or the series had been removed (a whole interval without values) and a
    /// cap keeps it from coming back.
    pub fn track(&self, value: f64) -> bool {
        let inner = &self.aggregator.inner;
        if !value.is_finite() {
            inner.refuse(Refused::Invalid);
            return false;
        }
        if self.series.add(thread_stripe(), value) {
            return true;
        }
        // Removed after an idle interval: record through its successor.
        let r = self
            .series
            .key
            .with_ref(|key| inner.record(key, value, false));
        if let Err(why) = r {
            inner.refuse(why);
        }
        r.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::TelemetryData;

    fn point(item: &Telemetry) -> &DataPoint {
        match &item.data {
            TelemetryData::Metric(m) => &m.metrics[0],
            _ => panic!("not a metric"),
        }
    }

    #[test]
    fn count_sum_min_max_and_std_dev_over_an_interval() {
        let a = MetricAggregator::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        a.collect(t0);
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        for v in values {
            assert!(a.metric("m").dimension("k", "v").track(v));
        }
        let items = a.collect(t0 + Duration::from_millis(60_500));
        assert_eq!(items.len(), 1);
        let p = point(&items[0]);
        assert_eq!(p.count, Some(8));
        assert_eq!(p.value, 40.0);
        assert_eq!((p.min, p.max), (Some(2.0), Some(9.0)));
        assert!((p.std_dev.unwrap() - 2.0).abs() < 1e-12, "{:?}", p.std_dev);
        assert_eq!(items[0].time, t0);
        assert_eq!(items[0].properties["k"], "v");
        assert_eq!(items[0].properties[AGGREGATION_INTERVAL_PROPERTY], "60500");
        // The next interval starts from zero; an idle series sends nothing and is removed.
        assert!(a.collect(t0 + Duration::from_secs(120)).is_empty());
        assert_eq!(a.stats().series, 0);
        assert!(a.metric("m").dimension("k", "v").track(1.0));
        let items = a.collect(t0 + Duration::from_secs(180));
        assert_eq!(point(&items[0]).count, Some(1));
        assert_eq!(point(&items[0]).std_dev, Some(0.0));
    }

    #[test]
    fn stripes_merge_exactly_across_threads() {
        let a = MetricAggregator::new();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let s = a.metric("m").series().unwrap();
                    for i in 0..1000 {
                        let v = f64::from(t * 1000 + i);
                        if i % 2 == 0 {
                            assert!(s.track(v));
                        } else {
                            assert!(a.metric("m").track(v));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let items = a.collect(SystemTime::now());
        assert_eq!(items.len(), 1);
        let p = point(&items[0]);
        let n = 8000.0_f64;
        assert_eq!(p.count, Some(8000));
        assert_eq!(p.value, (n - 1.0) * n / 2.0);
        assert_eq!((p.min, p.max), (Some(0.0), Some(7999.0)));
        // The population standard deviation of 0..n.
        let expected = ((n * n - 1.0) / 12.0).sqrt();
        assert!((p.std_dev.unwrap() - expected).abs() < 1e-6);
    }

    #[test]
    fn caps_refuse_and_count_and_free_up_after_an_idle_interval() {
        let limits = MetricLimits {
            series_per_metric: 2,
            max_series: 3,
        };
        let a = MetricAggregator::with_limits(limits);
        assert!(a.metric("m").dimension("k", "1").track(1.0));
        assert!(a.metric("m").dimension("k", "2").track(1.0));
        assert!(!a.metric("m").dimension("k", "3").track(1.0));
        assert!(a.metric("m").dimension("k", "3").series().is_none());
        assert!(a.metric("n").track(1.0));
        assert!(!a.metric("o").track(1.0), "the total cap");
        assert_eq!(a.stats().values_over_cap, 3);
        assert_eq!(a.stats().series, 3);
        let t = SystemTime::now();
        assert_eq!(a.collect(t).len(), 3);
        // One interval on, only k=1 and n received values: k=2 goes, and k=3 fits.
        assert!(a.metric("m").dimension("k", "1").track(1.0));
        assert!(a.metric("n").track(1.0));
        assert_eq!(a.collect(t + Duration::from_secs(60)).len(), 2);
        assert_eq!(a.stats().series, 2);
        assert!(a.metric("m").dimension("k", "3").track(1.0));
    }

    #[test]
    fn invalid_values_names_and_dimensions_are_counted() {
        let a = MetricAggregator::new();
        assert!(!a.metric("m").track(f64::INFINITY));
        assert!(!a.metric("").track(1.0));
        let mut m = a.metric("m");
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"] {
            m = m.dimension(k, "v");
        }
        assert!(!m.track(1.0));
        assert!(m.series().is_none());
        assert_eq!(a.stats().values_invalid, 4);
        assert!(!MetricTracker::inactive("m").track(1.0));
        assert!(MetricTracker::inactive("m").series().is_none());
    }

    #[test]
    fn a_series_handle_outlives_its_removal() {
        let a = MetricAggregator::new();
        let s = a.metric("m").dimension("k", "v").series().unwrap();
        let t = SystemTime::now();
        assert!(a.collect(t).is_empty(), "idle: removed");
        assert_eq!(a.stats().series, 0);
        assert!(s.track(2.0));
        assert!(s.track(3.0));
        let items = a.collect(t + Duration::from_secs(60));
        assert_eq!(items.len(), 1);
        assert_eq!(point(&items[0]).count, Some(2));
        assert_eq!(s.name(), "m");
    }

    #[test]
    fn strings_compare_and_hash_by_every_byte() {
        let all: Vec<String> = (0..40)
            .flat_map(|n| {
                let base: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..n].to_owned();
                (0..n.max(1)).map(move |i| {
                    let mut b = base.clone().into_bytes();
                    if let Some(c) = b.get_mut(i) {
                        *c = b'_';
                    }
                    String::from_utf8(b).unwrap()
                })
            })
            .collect();
        for a in &all {
            for b in &all {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
        let key = |name| {
            KeyHasher::key(
                7,
                &KeyRef {
                    namespace: "",
                    name,
                    dims: &[],
                },
            )
        };
        assert_ne!(key("ab"), key("ba"));
        assert_eq!(key("orders.lines"), key("orders.lines"));
    }

    #[test]
    fn namespaces_and_aggregators_are_apart() {
        let a = MetricAggregator::new();
        let b = MetricAggregator::new();
        assert!(a.metric("m").track(1.0));
        assert!(b.metric("m").track(2.0));
        assert!(a.metric("m").namespace("ns").track(3.0));
        let items = a.collect(SystemTime::now());
        assert_eq!(items.len(), 2);
        let mut ns: Vec<_> = items
            .iter()
            .map(|i| (point(i).namespace.clone(), point(i).value))
            .collect();
        ns.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(ns, [(String::new(), 1.0), ("ns".into(), 3.0)]);
        assert_eq!(point(&b.collect(SystemTime::now())[0]).value, 2.0);
        let owned = b.clone().into_metric("m");
        assert!(owned.track(1.0));
    }
}
