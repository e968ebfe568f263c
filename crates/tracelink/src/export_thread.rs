//! The exporter on a thread of its own: a single-threaded tokio runtime that runs the
//! exporter's background task, so that the setup needs no runtime of the application's,
//! exporting never competes with request handling for the application's workers, and the
//! handle can wait for the last items when dropped, even inside the application's runtime.
//! The Live Metrics client, when on, runs on the same runtime.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;
use tracelink_core::TelemetrySink;
use tracelink_export::{Exporter, ExporterBuilder, Sampling, Stats};

use crate::error::{InitError, InitErrorKind};
use crate::handoff::Handoff;
use crate::settings::Settings;
use crate::setup::Builder;

/// The exporter and the thread that runs it.
pub(crate) struct Export {
    exporter: Exporter,
    runtime: tokio::runtime::Handle,
    /// Ends the thread when sent or dropped.
    stop: Option<oneshot::Sender<()>>,
    #[cfg(feature = "live-metrics")]
    live: Option<tracelink_live::LiveMetrics>,
    /// What the setup's parts send to: items reach the exporter from this thread.
    handoff: Arc<Handoff>,
}

impl Export {
    pub(crate) fn start(
        builder: &mut Builder,
        settings: &Settings,
        standard: &Option<Arc<tracelink_core::metrics::StandardMetrics>>,
    ) -> Result<Self, InitError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            InitError::new(InitErrorKind::Exporter, "exporter", Some(e))
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new()
            .name("tracelink-export".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| failed(Box::new(e)))?;
        let runtime = ready_rx
            .recv()
            .map_err(|e| failed(Box::new(e)))?
            .map_err(|e| failed(Box::new(e)))?;

        let mut exporter = ExporterBuilder::from(settings.connection.clone());
        let sampling = match (builder.sampling.take(), settings.sampling_percentage) {
            (Some(s), _) => s,
            (None, Some(p)) => Sampling::fixed(p),
            (None, None) => Sampling::off(),
        };
        exporter = exporter.sampling(sampling);
        let tags = settings.item_tags();
        exporter = exporter.initializer(move |item| crate::shared::tag(item, &tags));
        #[cfg(feature = "azure-identity")]
        if let (Some(client_id), false) = (&settings.authentication, builder.credential) {
            let c = tracelink_export::AzureCredential::managed_identity(client_id.as_deref())
                .map_err(|e| {
                    InitError::new(
                        InitErrorKind::InvalidSetting,
                        crate::setup::AUTHENTICATION_ENV,
                        Some(Box::new(e)),
                    )
                })?;
            exporter = exporter.credential(c);
        }
        for f in builder.exporter.drain(..) {
            exporter = f(exporter);
        }
        let exporter = {
            let _entered = runtime.enter();
            exporter.build().map_err(|e| failed(Box::new(e)))?
        };
        #[cfg(feature = "live-metrics")]
        let live = crate::live_setup::start(
            std::mem::take(&mut builder.live_metrics),
            settings,
            &runtime,
            exporter.bearer_token(),
        )?;
        // Where items go: the exporter, behind Live Metrics' counting when it is on (so that
        // items are counted before the exporter samples them), reached through the hand-off.
        let sink = exporter.sink();
        #[cfg(feature = "live-metrics")]
        let sink: Arc<dyn TelemetrySink> = match &live {
            Some(live) => Arc::new(live.sink(sink)),
            None => sink,
        };
        // In front of Live Metrics too: items of operations that sampling dropped are
        // recorded for the standard metrics alone, and go no further.
        let sink = crate::metrics_setup::in_front(sink, standard);
        let handoff = Arc::new(Handoff::new(sink));
        runtime.spawn(handoff.clone().run());
        Ok(Self {
            exporter,
            runtime,
            stop: Some(stop),
            #[cfg(feature = "live-metrics")]
            live,
            handoff,
        })
    }

    /// Where the setup's parts send items: the hand-off to this thread ([`Handoff`]).
    pub(crate) fn sink(&self) -> Arc<dyn TelemetrySink> {
        self.handoff.clone()
    }

    #[cfg(feature = "live-metrics")]
    pub(crate) fn live(&self) -> Option<tracelink_live::LiveMetrics> {
        self.live.clone()
    }

    /// Moves the items waiting in the hand-off on, so that the sinks behind it (the standard
    /// metrics among them) have seen every item sent so far.
    pub(crate) fn drain(&self) {
        self.handoff.drain();
    }

    /// The exporter's counters, with every item sent so far counted.
    pub(crate) fn stats(&self) -> Stats {
        self.handoff.drain();
        self.exporter.stats()
    }

    pub(crate) async fn flush(&self) {
        self.handoff.drain();
        let _ = self.exporter.flush().await;
    }

    pub(crate) async fn shutdown(mut self, timeout: Duration) {
        #[cfg(feature = "live-metrics")]
        if let Some(live) = self.live.take() {
            live.stop();
        }
        self.handoff.close();
        let stop = self.stop.take();
        let _ = self.exporter.shutdown(timeout).await;
        drop(stop);
    }

    /// Shuts down from a thread that may not await: the exporter's own thread runs the
    /// shutdown, this one waits for it (at most `timeout` and a little).
    pub(crate) fn shutdown_blocking(mut self, timeout: Duration) {
        #[cfg(feature = "live-metrics")]
        if let Some(live) = self.live.take() {
            live.stop();
        }
        self.handoff.close();
        let stop = self.stop.take();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let exporter = self.exporter;
        self.runtime.spawn(async move {
            let _ = exporter.shutdown(timeout).await;
            let _ = done_tx.send(());
        });
        let _ = done_rx.recv_timeout(timeout + Duration::from_millis(250));
        drop(stop);
    }
}
