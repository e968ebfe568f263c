//! Panics as Exception items: a panic hook, installed by the setup and chained to the hook
//! that was there before, records each panic with its message and location, under the
//! operation it happened in (a handler's request, a job's operation), before the panic
//! unwinds. The server layer records the request itself as failed (500) as well.

use std::panic::PanicHookInfo;
use std::sync::Once;

use crate::client::current_client;
use crate::items::{Exception, Severity};

static INSTALL: Once = Once::new();

/// The type name of the Exception items of panics.
pub const PANIC_TYPE: &str = "panic";

/// Installs the hook once per process; it records only while a setup is running.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            record(info);
            previous(info);
        }));
    });
}

fn record(info: &PanicHookInfo<'_>) {
    let Some(client) = current_client() else {
        return;
    };
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned());
    let mut exception = Exception::new(PANIC_TYPE, message).severity(Severity::Critical);
    if let Some(at) = info.location() {
        let location = format!("{}:{}:{}", at.file(), at.line(), at.column());
        exception = exception
            .stack(format!("at {location}"))
            .property("location", location);
    }
    if let Some(thread) = std::thread::current().name() {
        exception = exception.property("thread", thread.to_owned());
    }
    // Inside an operation the item is its child; outside of one it stands alone.
    client.track_exception(exception);
}
