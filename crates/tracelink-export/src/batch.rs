//! Batches (SPEC 7.4): newline-delimited JSON envelopes, gzipped.

use std::io::Read;

use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
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
    gzip: Option<Gzip>,
}

impl Builder {
    pub(crate) fn new(ikey: &str) -> Self {
        Self {
            lines: Vec::with_capacity(64 * 1024),
            count: 0,
            ikey: ikey.to_owned(),
            gzip: None,
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
        let gzip = match &mut self.gzip {
            Some(g) if g.level == level => g,
            slot => slot.insert(Gzip::new(level)),
        };
        let batch = Batch {
            gz: gzip.compress(&self.lines),
            count,
        };
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
        Self {
            gz: Gzip::new(level).compress(lines),
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

/// A gzip writer kept from batch to batch: the deflate state (its window and hash tables,
/// a few hundred KiB) is allocated once and reset for each batch, and the output is written
/// into a buffer that keeps its capacity, then copied out once.
pub(crate) struct Gzip {
    level: u32,
    deflate: Compress,
    out: Vec<u8>,
}

impl std::fmt::Debug for Gzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gzip").field("level", &self.level).finish()
    }
}

impl Gzip {
    pub(crate) fn new(level: u32) -> Self {
        Self {
            level,
            // Raw deflate: the gzip header and trailer are written here.
            deflate: Compress::new(Compression::new(level), false),
            out: Vec::new(),
        }
    }

    /// `data` as one gzip member (RFC 1952), with the header flate2's `GzEncoder` writes.
    pub(crate) fn compress(&mut self, data: &[u8]) -> Bytes {
        self.deflate.reset();
        self.out.clear();
        self.out.reserve(data.len() / 4 + 64);
        let xfl = match self.level {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        self.out
            .extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
        loop {
            let read = usize::try_from(self.deflate.total_in()).unwrap_or(usize::MAX);
            let input = data.get(read..).unwrap_or_default();
            match self
                .deflate
                .compress_vec(input, &mut self.out, FlushCompress::Finish)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => self.out.reserve(self.out.capacity().max(1024)),
                // Deflating into memory does not fail; an empty body would be refused.
                Err(_) => return Bytes::new(),
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        self.out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        self.out
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        Bytes::copy_from_slice(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn one_writer_for_many_batches_reads_back() {
        let mut gzip = Gzip::new(1);
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        for data in [
            &b""[..],
            b"{}\n",
            &big,
            b"{\"a\":1}\n{\"b\":2}\n",
            &big[..70_000],
        ] {
            let gz = gzip.compress(data);
            assert_eq!(gunzip(&gz), data);
        }
    }

    #[test]
    fn header_is_flate2s() {
        for level in [0, 1, 6, 9] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
            enc.write_all(b"x").unwrap();
            let theirs = enc.finish().unwrap();
            let ours = Gzip::new(level).compress(b"x");
            assert_eq!(ours[..10], theirs[..10], "level {level}");
            assert_eq!(ours[ours.len() - 8..], theirs[theirs.len() - 8..]);
        }
    }
}
