//! The background side of the exporter: the worker task that batches items, and the sender
//! that posts batches, retries them and keeps them in the store while ingestion cannot take
//! them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tracelink_core::model::Telemetry;

use crate::Processor;
use crate::backoff::Backoff;
use crate::batch::{Batch, BatchLimits, Builder};
use crate::response::{Outcome, classify};
use crate::sampling::Sampler;
use crate::spool::{Key, Store};
use crate::stats::{Counters, DropReason};
use crate::transport::{Transport, TransportRequest};

/// Most redirects followed for one post.
const MAX_REDIRECTS: usize = 5;

pub(crate) enum Control {
    Flush(oneshot::Sender<()>),
    Shutdown(Instant, oneshot::Sender<()>),
    Stop,
}

#[derive(Debug, Default)]
struct BackoffState {
    attempt: u32,
    until: Option<Instant>,
}

pub(crate) struct Sender {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) endpoint: Mutex<String>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) store: Store,
    pub(crate) backoff: Backoff,
    pub(crate) timeout: Duration,
    pub(crate) level: u32,
    pub(crate) stats: Arc<Counters>,
    state: Mutex<BackoffState>,
    draining: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    cancel: watch::Sender<bool>,
}

/// Tracks one in-flight task for [`Sender::wait_idle`].
struct Inflight(Arc<Sender>);

impl Drop for Inflight {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Sender {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        endpoint: String,
        max_concurrent: usize,
        store: Store,
        backoff: Backoff,
        timeout: Duration,
        level: u32,
        stats: Arc<Counters>,
    ) -> Self {
        Self {
            transport,
            endpoint: Mutex::new(endpoint),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            store,
            backoff,
            timeout,
            level,
            stats,
            state: Mutex::new(BackoffState::default()),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            cancel: watch::channel(false).0,
        }
    }

    fn track(self: &Arc<Self>) -> Inflight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Inflight(Arc::clone(self))
    }

    fn backoff_until(&self) -> Option<Instant> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.until.filter(|u| *u > Instant::now())
    }

    fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = BackoffState::default();
    }

    fn failed(&self, after: Option<Duration>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let delay = self.backoff.delay(st.attempt, after);
        st.attempt = st.attempt.saturating_add(1);
        // A configured cap may be anything: never overflow the clock.
        let now = Instant::now();
        st.until = Some(
            now.checked_add(delay)
                .unwrap_or(now + crate::backoff::MAX_RETRY_AFTER),
        );
        tracing::debug!(target: "tracelink_export", ?delay, attempt = st.attempt, "ingestion unavailable: backing off");
    }

    fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Sends a new batch, or stores it while backing off or while older batches wait: during
    /// an outage only the drain probes ingestion, one batch at a time, oldest first.
    pub(crate) fn submit(self: &Arc<Self>, batch: Batch) {
        if self.backoff_until().is_some()
            || self.is_cancelled()
            || self.draining.load(Ordering::Acquire)
            || !self.store.is_empty()
        {
            self.store_batch(batch);
            return;
        }
        let this = Arc::clone(self);
        let guard = self.track();
        tokio::spawn(async move {
            let _guard = guard;
            let mut cancel = this.cancel.subscribe();
            let permit = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => None,
                p = Arc::clone(&this.permits).acquire_owned() => p.ok(),
            };
            if permit.is_none() {
                this.store.put(batch);
                return;
            }
            let outcome = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => None,
                o = this.post(&batch) => Some(o),
            };
            match outcome {
                Some(o) => {
                    this.settle(batch, o, None);
                }
                None => this.store.put(batch),
            }
        });
    }

    /// Keeps a batch for later, and makes sure someone will send it.
    fn store_batch(self: &Arc<Self>, batch: Batch) {
        self.store.put(batch);
        self.ensure_drain();
    }

    /// POSTs a batch, following redirects; the outcome of the last answer.
    async fn post(&self, batch: &Batch) -> Outcome {
        for _ in 0..MAX_REDIRECTS {
            let url = self
                .endpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let req = TransportRequest {
                url,
                body: batch.gz.clone(),
            };
            let res = tokio::time::timeout(self.timeout, self.transport.send(req)).await;
            let outcome = match res {
                Ok(Ok(r)) => classify(&r, batch.count, SystemTime::now()),
                Ok(Err(e)) => {
                    tracing::debug!(target: "tracelink_export", error = %e, "post failed");
                    Outcome::Retry { after: None }
                }
                Err(_) => Outcome::Retry { after: None },
            };
            match outcome {
                Outcome::Redirect(to) => {
                    tracing::debug!(target: "tracelink_export", "ingestion redirected");
                    *self.endpoint.lock().unwrap_or_else(|e| e.into_inner()) = to;
                }
                other => return other,
            }
        }
        Outcome::Retry { after: None }
    }

    /// Books an outcome; `stored` is the batch's key when it came from the store.
    fn settle(self: &Arc<Self>, batch: Batch, outcome: Outcome, stored: Option<&Key>) -> bool {
        let n = u64::from(batch.count);
        let remove = |this: &Self| {
            if let Some(k) = stored {
                this.store.remove(k);
            }
        };
        match outcome {
            Outcome::Done => {
                Counters::add(&self.stats.sent, n);
                Counters::add(&self.stats.batches_sent, 1);
                remove(self);
                self.succeeded();
                self.ensure_drain();
                true
            }
            Outcome::Partial {
                accepted,
                retry,
                rejected,
            } => {
                Counters::add(&self.stats.sent, accepted);
                Counters::add(&self.stats.batches_sent, 1);
                self.stats.drop_items(DropReason::Rejected, rejected);
                remove(self);
                if let Some(sub) = batch.select(&retry, self.level) {
                    Counters::add(&self.stats.retried, u64::from(sub.count));
                    self.failed(None);
                    self.store_batch(sub);
                }
                true
            }
            Outcome::Retry { after } => {
                Counters::add(&self.stats.retried, n);
                self.failed(after);
                if stored.is_none() {
                    self.store_batch(batch);
                }
                false
            }
            Outcome::Rejected(status) => {
                tracing::warn!(target: "tracelink_export", status, items = n, "ingestion refused a batch: dropped");
                self.stats.drop_items(DropReason::Rejected, n);
                remove(self);
                true
            }
            // `post` follows redirects itself.
            Outcome::Redirect(_) => self.settle(batch, Outcome::Retry { after: None }, stored),
        }
    }

    /// Starts the task that sends stored batches, oldest first, unless one runs.
    pub(crate) fn ensure_drain(self: &Arc<Self>) {
        if self.is_cancelled()
            || self.store.is_empty()
            || self.draining.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = Arc::clone(self);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.draining.store(false, Ordering::Release);
            return;
        };
        handle.spawn(async move {
            let mut cancel = this.cancel.subscribe();
            loop {
                if let Some(until) = this.backoff_until() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {}
                        _ = cancel.wait_for(|c| *c) => break,
                    }
                }
                if this.is_cancelled() {
                    break;
                }
                let store = Arc::clone(&this);
                let next = tokio::task::spawn_blocking(move || store.store.oldest())
                    .await
                    .ok()
                    .flatten();
                let Some((key, batch)) = next else { break };
                let _permit = match Arc::clone(&this.permits).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                };
                let guard = this.track();
                let outcome = tokio::select! {
                    o = this.post(&batch) => o,
                    _ = cancel.wait_for(|c| *c) => break,
                };
                this.settle(batch, outcome, Some(&key));
                drop(guard);
            }
            this.draining.store(false, Ordering::Release);
            // A batch stored while we were finishing must not wait for the next trigger.
            if !this.is_cancelled() && !this.store.is_empty() {
                this.ensure_drain();
            }
        });
    }

    /// Waits until no post is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Stops sending: in-flight batches go to the store.
    pub(crate) fn cancel(&self) {
        self.cancel.send_replace(true);
    }
}

/// Most items the worker takes from the queue at once.
const RECV_BATCH: usize = 64;

pub(crate) struct Worker {
    pub(crate) items: mpsc::Receiver<Telemetry>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) sender: Arc<Sender>,
    pub(crate) sampler: Arc<Sampler>,
    pub(crate) processors: Vec<Processor>,
    pub(crate) limits: BatchLimits,
    pub(crate) builder: Builder,
    pub(crate) stats: Arc<Counters>,
}

impl Worker {
    fn accept(&mut self, mut item: Telemetry, deadline: &mut Option<Instant>) {
        if !self.processors.iter().all(|p| p(&mut item)) {
            self.stats.drop_items(DropReason::Processor, 1);
            return;
        }
        if self.builder.is_empty() {
            *deadline = Some(Instant::now() + self.limits.max_delay);
        }
        if self.builder.push(&item, &self.limits) {
            self.dispatch(deadline);
        }
    }

    fn dispatch(&mut self, deadline: &mut Option<Instant>) {
        *deadline = None;
        if !self.builder.is_empty() {
            let batch = self.builder.take(self.sender.level);
            self.sender.submit(batch);
        }
    }

    /// Takes every item already queued.
    fn drain_queue(&mut self, deadline: &mut Option<Instant>) {
        while let Ok(item) = self.items.try_recv() {
            self.accept(item, deadline);
        }
        self.dispatch(deadline);
    }

    pub(crate) async fn run(mut self) {
        self.sender.ensure_drain();
        let mut deadline: Option<Instant> = None;
        let mut evaluate = tokio::time::interval(Duration::from_secs(1));
        evaluate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Items are taken up to RECV_BATCH at a time, and the flush timer is one timer reset
        // when a batch starts (not a new timer per item): per item, the worker does little
        // more than encode it.
        let mut received = Vec::with_capacity(RECV_BATCH);
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut open = true;
        loop {
            if deadline != armed {
                if let Some(d) = deadline {
                    sleep.as_mut().reset(d.into());
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                ctl = self.control.recv() => match ctl {
                    Some(Control::Flush(done)) => {
                        self.drain_queue(&mut deadline);
                        self.sender.wait_idle().await;
                        let _ = done.send(());
                    }
                    Some(Control::Shutdown(until, done)) => {
                        self.drain_queue(&mut deadline);
                        let _ = tokio::time::timeout_at(until.into(), self.sender.wait_idle()).await;
                        self.sender.cancel();
                        // Cancelled posts store their batches as they stop.
                        let _ = tokio::time::timeout(Duration::from_secs(1), self.sender.wait_idle()).await;
                        self.count_lost();
                        let _ = done.send(());
                        return;
                    }
                    Some(Control::Stop) | None => {
                        self.sender.cancel();
                        self.drain_queue_to_store();
                        self.count_lost();
                        return;
                    }
                },
                n = self.items.recv_many(&mut received, RECV_BATCH), if open => {
                    if n == 0 {
                        // Closed: every sender is gone; wait for the control channel.
                        open = false;
                        self.dispatch(&mut deadline);
                        deadline = None;
                    }
                    for item in received.drain(..) {
                        self.accept(item, &mut deadline);
                    }
                    // A queue that never empties would keep the (lower-priority) timer from
                    // firing: a batch that is due goes now.
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        self.dispatch(&mut deadline);
                    }
                }
                _ = &mut sleep, if deadline.is_some() => self.dispatch(&mut deadline),
                _ = evaluate.tick() => {
                    if let Some(pct) = self.sampler.evaluate(Instant::now()) {
                        tracing::debug!(target: "tracelink_export", percentage = pct, "adaptive sampling changed");
                    }
                }
            }
        }
    }

    /// Without a runtime to send: everything still queued goes straight to the store.
    fn drain_queue_to_store(&mut self) {
        self.items.close();
        while let Ok(mut item) = self.items.try_recv() {
            if !self.processors.iter().all(|p| p(&mut item)) {
                self.stats.drop_items(DropReason::Processor, 1);
                continue;
            }
            if self.builder.push(&item, &self.limits) {
                let b = self.builder.take(self.sender.level);
                self.sender.store.put(b);
            }
        }
        if !self.builder.is_empty() {
            let b = self.builder.take(self.sender.level);
            self.sender.store.put(b);
        }
    }

    /// Counts what a memory-only store still holds: it dies with the process.
    fn count_lost(&mut self) {
        self.items.close();
        if !self.sender.store.is_durable() {
            let lost = self.sender.store.memory_items();
            if lost > 0 {
                tracing::warn!(target: "tracelink_export", items = lost, "exporter stopped with unsent items and no spool");
                self.stats.drop_items(DropReason::Shutdown, lost);
            }
        }
    }
}
