//! The background side of the exporter: the worker task that batches items, and the sender
//! that posts batches, retries them and keeps them in the store while they cannot be sent.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tracelink_core::model::Telemetry;

use crate::Processor;
use crate::backoff::{Backoff, MAX_PROBE_INTERVAL, MAX_RETRY_AFTER};
use crate::batch::{Batch, BatchLimits, Builder};
use crate::credential::TokenCache;
use crate::response::{Outcome, classify, unreadable};
use crate::sampling::Sampler;
use crate::spool::{Key, Store};
use crate::stats::{Counters, DropReason, DropWarner};
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
    /// Failures since the last success.
    attempt: u32,
    until: Option<Instant>,
    /// The last failure had no answer at all: its wait was cut to [`MAX_PROBE_INTERVAL`],
    /// and new batches may try while it runs.
    unreachable: bool,
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
    /// The Entra ID token to send, when the exporter has a credential.
    credential: Option<Arc<TokenCache>>,
    state: Mutex<BackoffState>,
    draining: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    /// Ends a drain's wait: a send got through.
    wake: Notify,
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
            credential: None,
            state: Mutex::new(BackoffState::default()),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            wake: Notify::new(),
            cancel: watch::channel(false).0,
        }
    }

    /// Sends every post with a token of `credential`.
    pub(crate) fn with_credential(mut self, credential: Arc<TokenCache>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Stops with the sender: for the token's refresher.
    pub(crate) fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.subscribe()
    }

    fn track(self: &Arc<Self>) -> Inflight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Inflight(Arc::clone(self))
    }

    fn state(&self) -> MutexGuard<'_, BackoffState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backoff_until(&self) -> Option<Instant> {
        self.state().until.filter(|u| *u > Instant::now())
    }

    /// Whether nothing failed since the last success.
    fn healthy(&self) -> bool {
        self.state().attempt == 0
    }

    fn succeeded(&self) {
        *self.state() = BackoffState::default();
        // A drain waiting out a backoff goes at once.
        self.wake.notify_waiters();
    }

    /// Starts a wait before the next attempt: the backoff, never shorter than `after`
    /// (`Retry-After`), and never longer than [`MAX_PROBE_INTERVAL`] when there was no
    /// answer (`unreachable`).
    fn failed(&self, after: Option<Duration>, unreachable: bool) {
        let mut st = self.state();
        let now = Instant::now();
        if unreachable && st.until.is_some_and(|u| u > now) {
            // A new batch that tried during the wait: the wait stands.
            return;
        }
        let mut delay = self.backoff.delay(st.attempt, after);
        if unreachable {
            delay = delay.min(MAX_PROBE_INTERVAL);
        }
        st.attempt = st.attempt.saturating_add(1);
        st.unreachable = unreachable;
        // A configured cap may be anything: never overflow the clock.
        st.until = Some(now.checked_add(delay).unwrap_or(now + MAX_RETRY_AFTER));
        tracing::debug!(target: "tracelink_export", ?delay, attempt = st.attempt, unreachable,
            "ingestion unavailable: backing off");
    }

    fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Whether a new batch is posted now rather than stored.
    fn sends_now(&self) -> bool {
        if self.is_cancelled() {
            return false;
        }
        let (waiting, unreachable) = {
            let st = self.state();
            (st.until.is_some_and(|u| u > Instant::now()), st.unreachable)
        };
        if waiting {
            // Ingestion asked for the wait: keep to it. Without any answer, a new batch is
            // the cheapest probe: refused at once, or the first to get through.
            return unreachable;
        }
        // Stored batches go first: while there are any, new ones queue behind them.
        self.store.is_empty()
    }

    /// Sends a new batch, or stores it: while ingestion asked for a wait, while older
    /// batches are stored, and when every send slot is taken. No batch waits in memory for
    /// a slot: the backlog is on disk, as in an outage, where a kill cannot take it.
    pub(crate) fn submit(self: &Arc<Self>, batch: Batch) {
        if !self.sends_now() {
            self.store_batch(batch);
            return;
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.store_batch(batch);
            return;
        };
        let this = Arc::clone(self);
        let guard = self.track();
        tokio::spawn(async move {
            let _guard = guard;
            let _permit = permit;
            let mut cancel = this.cancel.subscribe();
            let outcome = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => None,
                o = this.post(&batch) => Some(o),
            };
            match outcome {
                Some(o) => this.settle(batch, o, None),
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
            // Never on the request path: posts run on the exporter's tasks.
            let bearer = match &self.credential {
                Some(c) => match c.bearer(self.timeout).await {
                    Some(b) => Some(b),
                    None => return Outcome::NoToken,
                },
                None => None,
            };
            let req = TransportRequest {
                url,
                body: batch.gz.clone(),
                authorization: bearer.as_ref().map(|b| b.header.clone()),
            };
            let res = tokio::time::timeout(self.timeout, self.transport.send(req)).await;
            let outcome = match res {
                Ok(Ok(r)) => {
                    if unreadable(&r) {
                        Counters::add(&self.stats.malformed_answers, 1);
                        tracing::debug!(target: "tracelink_export", status = r.status,
                            "answer body too long, too slow or broken off: the status decides");
                    }
                    let outcome = classify(&r, batch.count, SystemTime::now());
                    match (&self.credential, &bearer, outcome) {
                        (Some(c), Some(b), Outcome::Rejected(status @ (401 | 403))) => {
                            c.refused(b, status);
                            Outcome::Unauthorized
                        }
                        (Some(c), _, o) => {
                            c.accepted();
                            o
                        }
                        (None, _, o) => o,
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "tracelink_export", error = %e, "post failed");
                    Outcome::Unreachable
                }
                Err(_) => Outcome::Unreachable,
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

    /// Books an outcome; `stored` is the batch's claim when it came from the store.
    fn settle(self: &Arc<Self>, batch: Batch, outcome: Outcome, stored: Option<Key>) {
        let n = u64::from(batch.count);
        let remove = |this: &Self, stored: Option<Key>| {
            if let Some(k) = stored {
                this.store.remove(&k);
            }
        };
        match outcome {
            Outcome::Done => {
                Counters::add(&self.stats.sent, n);
                Counters::add(&self.stats.batches_sent, 1);
                remove(self, stored);
                self.succeeded();
                self.ensure_drain();
            }
            Outcome::Partial {
                accepted,
                retry,
                rejected,
            } => {
                Counters::add(&self.stats.sent, accepted);
                Counters::add(&self.stats.batches_sent, 1);
                self.stats.drop_items(DropReason::Rejected, rejected);
                remove(self, stored);
                match batch.select(&retry, self.level) {
                    Some(sub) => {
                        Counters::add(&self.stats.retried, u64::from(sub.count));
                        self.failed(None, false);
                        self.store_batch(sub);
                    }
                    None => {
                        self.succeeded();
                        self.ensure_drain();
                    }
                }
            }
            Outcome::Retry { after } => self.retry(batch, stored, after, false),
            // Kept for a new token: the refresh runs while the backoff does.
            Outcome::Unauthorized | Outcome::NoToken => self.retry(batch, stored, None, false),
            Outcome::Unreachable => self.retry(batch, stored, None, true),
            Outcome::Rejected(status) => {
                tracing::debug!(target: "tracelink_export", status, items = n, "ingestion refused a batch: dropped");
                self.stats.drop_items(DropReason::Rejected, n);
                remove(self, stored);
            }
            // `post` follows redirects itself.
            Outcome::Redirect(_) => self.settle(batch, Outcome::Retry { after: None }, stored),
        }
    }

    fn retry(
        self: &Arc<Self>,
        batch: Batch,
        stored: Option<Key>,
        after: Option<Duration>,
        unreachable: bool,
    ) {
        Counters::add(&self.stats.retried, u64::from(batch.count));
        self.failed(after, unreachable);
        match stored {
            // Back to the spool, for whichever exporter sends next.
            Some(k) => self.store.release(k, batch),
            None => self.store_batch(batch),
        }
    }

    /// Starts the task that sends stored batches, oldest first, unless one runs.
    pub(crate) fn ensure_drain(self: &Arc<Self>) {
        if self.is_cancelled()
            || self.draining.load(Ordering::Acquire)
            || self.store.is_empty()
            || self.draining.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.draining.store(false, Ordering::Release);
            return;
        };
        handle.spawn(Arc::clone(self).drain());
    }

    /// Sends stored batches until none is left: as many at once as there are free slots
    /// while ingestion takes them, one at a time while it is failing (each a probe), and
    /// none during a backoff.
    async fn drain(self: Arc<Self>) {
        let mut cancel = self.cancel.subscribe();
        let mut misses = 0u32;
        loop {
            if !self.wait_backoff(&mut cancel).await {
                break;
            }
            let permit = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => break,
                p = Arc::clone(&self.permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            // Tracked from the claim on: a shutdown waits for the batch to be sent or given
            // back, and never counts a store that has it out.
            let guard = self.track();
            let this = Arc::clone(&self);
            let next = tokio::task::spawn_blocking(move || this.store.claim())
                .await
                .ok()
                .flatten();
            let Some((key, batch)) = next else {
                drop((guard, permit));
                // Done, unless a batch was stored meanwhile and no other drain started.
                self.draining.store(false, Ordering::Release);
                if self.is_cancelled()
                    || self.store.is_empty()
                    || self.draining.swap(true, Ordering::AcqRel)
                {
                    return;
                }
                misses += 1;
                if misses > 1 {
                    // Batches none of which could be claimed: others are taking them.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.wait_for(|c| *c) => break,
                    }
                }
                continue;
            };
            misses = 0;
            if self.healthy() {
                let this = Arc::clone(&self);
                tokio::spawn(async move {
                    let _guard = guard;
                    let _permit = permit;
                    this.send_stored(key, batch).await;
                });
            } else {
                self.send_stored(key, batch).await;
                drop((guard, permit));
            }
        }
        self.draining.store(false, Ordering::Release);
    }

    /// Waits out a backoff; a send that gets through ends the wait at once. `false` when
    /// cancelled.
    async fn wait_backoff(&self, cancel: &mut watch::Receiver<bool>) -> bool {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let Some(until) = self.backoff_until() else {
                return !self.is_cancelled();
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = &mut woken => {}
                _ = cancel.wait_for(|c| *c) => return false,
            }
        }
    }

    /// Posts a claimed batch; cancelled, it goes back to the store.
    async fn send_stored(self: &Arc<Self>, key: Key, batch: Batch) {
        let mut cancel = self.cancel.subscribe();
        let outcome = tokio::select! {
            biased;
            _ = cancel.wait_for(|c| *c) => None,
            o = self.post(&batch) => Some(o),
        };
        match outcome {
            Some(o) => self.settle(batch, o, Some(key)),
            None => self.store.release(key, batch),
        }
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

    /// Waits until no post is in flight and no stored batch can be sent now: the store is
    /// empty, or ingestion is being waited for. Stored batches that are sendable count as
    /// queued: they were stored only because every slot was busy.
    pub(crate) async fn wait_flushed(self: &Arc<Self>) {
        let progress = |s: &Self| {
            s.stats.batches_sent.load(Ordering::Relaxed)
                + s.stats.retried.load(Ordering::Relaxed)
                + s.stats.snapshot().dropped_total()
        };
        let (mut last, mut stalled) = (progress(self), 0u32);
        loop {
            self.wait_idle().await;
            if self.is_cancelled() || self.backoff_until().is_some() || self.store.is_empty() {
                return;
            }
            self.ensure_drain();
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = progress(self);
            if now != last {
                (last, stalled) = (now, 0);
            } else {
                stalled += 1;
                // Nothing moves for 5 s (other exporters hold what is stored): stop waiting.
                if stalled >= 500 {
                    return;
                }
            }
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
    pub(crate) warner: DropWarner,
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
                        self.sender.wait_flushed().await;
                        let _ = done.send(());
                    }
                    Some(Control::Shutdown(until, done)) => {
                        self.drain_queue(&mut deadline);
                        let _ = tokio::time::timeout_at(until.into(), self.sender.wait_flushed()).await;
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
                    self.warner.check(&self.stats.snapshot(), Instant::now());
                    // Batches that other exporters sharing the spool left there, or that
                    // were taken over from one that stopped.
                    self.sender.ensure_drain();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Memory;
    use crate::transport::{BoxFuture, TransportError, TransportResponse};

    /// Answers 200 while `up`, else fails like a refused connection.
    #[derive(Clone, Default)]
    struct Switch {
        up: Arc<AtomicBool>,
        posts: Arc<AtomicUsize>,
    }

    impl Transport for Switch {
        fn send(
            &self,
            _: TransportRequest,
        ) -> BoxFuture<'_, Result<TransportResponse, TransportError>> {
            self.posts.fetch_add(1, Ordering::SeqCst);
            let up = self.up.load(Ordering::SeqCst);
            Box::pin(async move {
                match up {
                    true => Ok(TransportResponse::new(200, "")),
                    false => Err(TransportError::new("connection refused")),
                }
            })
        }
    }

    fn sender(backoff: Backoff, transport: Switch) -> Arc<Sender> {
        let stats = Arc::new(Counters::default());
        let store = Store::Memory(Memory::new(1 << 20, stats.clone()));
        Arc::new(Sender::new(
            Arc::new(transport),
            "http://127.0.0.1:9/v2.1/track".into(),
            4,
            store,
            backoff,
            Duration::from_secs(30),
            1,
            stats,
        ))
    }

    fn batch(n: u32) -> Batch {
        Batch::compress(b"{}\n", n, 1)
    }

    /// Without an answer the backoff still grows, but no wait is longer than
    /// MAX_PROBE_INTERVAL; a wait ingestion asks for is kept whole, and a failed probe
    /// during a wait does not make it longer.
    #[test]
    fn no_answer_waits_at_most_the_probe_interval() {
        let s = sender(
            Backoff::new(Duration::from_secs(60), Duration::from_secs(3600)),
            Switch::default(),
        );
        for _ in 0..20 {
            s.state().until = None; // the last wait is over
            s.failed(None, true);
            let wait = s.backoff_until().map(|u| u - Instant::now());
            assert!(wait.is_some_and(|w| w <= MAX_PROBE_INTERVAL), "{wait:?}");
        }
        assert_eq!(s.state().attempt, 20);
        s.state().until = None;
        s.failed(Some(Duration::from_secs(100)), false);
        let until = s.backoff_until().unwrap();
        assert!(until - Instant::now() > Duration::from_secs(99));
        s.failed(None, true);
        assert_eq!(
            s.backoff_until(),
            Some(until),
            "a probe that failed changes nothing"
        );
    }

    /// While ingestion gives no answer, a new batch is tried at once; when it gets through,
    /// the stored batches go too, without waiting out the backoff.
    #[tokio::test]
    async fn a_send_that_gets_through_ends_the_spools_wait() {
        let transport = Switch::default();
        let s = sender(Backoff::default(), transport.clone());
        s.failed(None, true);
        s.state().until = Some(Instant::now() + Duration::from_secs(3600));
        s.store.put(batch(3));
        s.ensure_drain();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(transport.posts.load(Ordering::SeqCst), 0, "the drain waits");
        transport.up.store(true, Ordering::SeqCst);
        s.submit(batch(2));
        let start = Instant::now();
        while s.stats.sent.load(Ordering::SeqCst) < 5 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the spool did not go"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(transport.posts.load(Ordering::SeqCst), 2);
        assert!(s.store.is_empty());
    }
}
