//! Batches (SPEC 7.4): newline-delimited JSON envelopes, gzipped.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tracelink_core::envelope;
use tracelink_core::model::Telemetry;

/// When a batch is sent: at 500 items, 1 MiB of JSON, or 5 s after its first item,
/// whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most items in one request.
    pub max_items: usize,
    /// Most uncompressed bytes in one request.
    pub max_bytes: usize,
    /// Longest an item waits for its batch to fill.
    pub max_delay: std::time::Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_items: 500,
            max_bytes: 1024 * 1024,
            max_delay: std::time::Duration::from_secs(5),
        }
    }
}

/// A batch being filled: envelope lines.
#[derive(Debug)]
pub(crate) struct Builder {
    lines: Vec<u8>,
    count: u32,
    ikey: String,
}

impl Builder {
    pub(crate) fn new(ikey: &str) -> Self {
        Self {
            lines: Vec::with_capacity(64 * 1024),
            count: 0,
            ikey: ikey.to_owned(),
        }
    }

    /// Appends an item; returns whether the batch is full afterwards.
    pub(crate) fn push(&mut self, item: &Telemetry, limits: &BatchLimits) -> bool {
        envelope::write_line(&mut self.lines, item, &self.ikey);
        self.count += 1;
        self.count as usize >= limits.max_items || self.lines.len() >= limits.max_bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lines so far as a gzipped batch; the builder is empty afterwards.
    pub(crate) fn take(&mut self, level: u32) -> Batch {
        let count = std::mem::take(&mut self.count);
        let batch = Batch::compress(&self.lines, count, level);
        self.lines.clear();
        batch
    }
}

/// A gzipped batch and how many items it holds.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub(crate) gz: Bytes,
    pub(crate) count: u32,
}

impl Batch {
    pub(crate) fn compress(lines: &[u8], count: u32, level: u32) -> Self {
        let mut enc = GzEncoder::new(
            Vec::with_capacity(lines.len() / 4 + 64),
            Compression::new(level),
        );
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(lines);
        let gz = enc.finish().unwrap_or_default();
        Self {
            gz: Bytes::from(gz),
            count,
        }
    }

    /// The envelope lines, decompressed; `None` when the body is not valid gzip.
    pub(crate) fn lines(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.gz.len() * 4);
        GzDecoder::new(&self.gz[..]).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// A batch of only the lines at `indices` (a 206 resend).
    pub(crate) fn select(&self, indices: &[usize], level: u32) -> Option<Self> {
        let lines = self.lines()?;
        let mut out = Vec::new();
        let mut count = 0;
        for (i, line) in lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            if indices.contains(&i) {
                out.extend_from_slice(line);
                out.push(b'\n');
                count += 1;
            }
        }
        (count > 0).then(|| Self::compress(&out, count, level))
    }
}
