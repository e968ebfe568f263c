//! The state a client shares with the code that counts, and what it reports of itself.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tracelink_core::model::Telemetry;

use crate::counters::Counters;
use crate::protocol::Document;

/// The settings of a client, fixed when it is built. Not `Debug`: it holds the
/// instrumentation key.
#[derive(Clone)]
pub(crate) struct Config {
    /// `scheme://host[:port]`.
    pub(crate) endpoint: String,
    pub(crate) instrumentation_key: String,
    pub(crate) role: Option<String>,
    pub(crate) instance: String,
    pub(crate) machine_name: String,
    pub(crate) version: String,
    pub(crate) stream_id: String,
    pub(crate) ping_interval: Duration,
    pub(crate) post_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) post_failure_window: Duration,
    pub(crate) ping_failure_window: Duration,
    pub(crate) fallback_interval: Duration,
    pub(crate) max_documents: u32,
    /// The `Authorization` value of each request, asked for just before it is sent.
    pub(crate) authorization: Option<Authorization>,
}

/// Gives the `Authorization` header value of a request: [`LiveMetricsBuilder::authorization`](crate::LiveMetricsBuilder::authorization).
pub(crate) type Authorization = Arc<dyn Fn() -> Option<http::HeaderValue> + Send + Sync>;

/// What the client shares with the code that counts.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Someone watches: count items and keep documents.
    pub(crate) collecting: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) documents: Mutex<Vec<Document>>,
    pub(crate) documents_offered: AtomicU32,
    pub(crate) stop: Notify,
    pub(crate) stopped: AtomicBool,
    pub(crate) started: AtomicBool,
    pub(crate) status: Mutex<LiveStatus>,
}

impl Shared {
    fn documents(&self) -> MutexGuard<'_, Vec<Document>> {
        // A push cannot leave the Vec invalid, whatever panicked while the lock was held.
        self.documents.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn status(&self) -> MutexGuard<'_, LiveStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Someone started watching: counts start from zero now.
    pub(crate) fn begin_collecting(&self) {
        self.counters.take();
        self.take_documents();
        self.collecting.store(true, Ordering::Release);
    }

    /// Nobody watches any more: counting stops, what was counted is dropped.
    pub(crate) fn end_collecting(&self) {
        self.collecting.store(false, Ordering::Release);
        self.counters.take();
        self.take_documents();
    }

    /// The documents collected since the last call; the quota starts again.
    pub(crate) fn take_documents(&self) -> Vec<Document> {
        let docs = std::mem::take(&mut *self.documents());
        self.documents_offered.store(0, Ordering::Relaxed);
        docs
    }

    pub(crate) fn offer_document(&self, item: &Telemetry) {
        let max = self.config.max_documents;
        // Once the quota is used up, only a load per item (no write to a shared line).
        if self.documents_offered.load(Ordering::Relaxed) >= max
            || self.documents_offered.fetch_add(1, Ordering::Relaxed) >= max
        {
            return;
        }
        if let Some(doc) = Document::from_telemetry(item) {
            self.documents().push(doc);
        }
    }
}

/// What a Live Metrics client knows: [`LiveMetrics::status`](crate::LiveMetrics::status).
///
/// ```
/// # let cs = tracelink_core::ConnectionString::parse("InstrumentationKey=00000000-0000-0000-0000-000000000001").unwrap();
/// let status = tracelink_live::LiveMetrics::builder(&cs).build().unwrap().status();
/// assert!(!status.subscribed);
/// assert_eq!(status.configuration_etag, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiveStatus {
    /// Someone watches: the client posts.
    pub subscribed: bool,
    /// Where pings and posts go (`scheme://host[:port]`), after any redirect.
    pub endpoint: String,
    /// The interval between pings, after any hint of the service.
    pub ping_interval: Duration,
    /// The configuration ETag the service gave last, echoed on every request.
    pub configuration_etag: Option<String>,
    /// Pings answered.
    pub pings: u64,
    /// Posts answered.
    pub posts: u64,
    /// Pings and posts that failed (no answer in time, or not `2xx`).
    pub failures: u64,
}
