//! How batches reach ingestion: the [`Transport`] trait and the default hyper client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Most bytes of an answer's body that are read: a Breeze answer for 500 items is a few KB.
/// A longer body is not read further (nor is one whose `Content-Length` says it is longer):
/// the answer is [`incomplete`](TransportResponse::incomplete).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How long [`HyperTransport`] waits for an answer's body once its head has arrived, by
/// default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// A boxed future, as transports return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One POST of a batch: `url` (`…/v2.1/track`), the gzipped newline-delimited JSON body,
/// and with a [credential](crate::credential) the `Authorization` header to send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportRequest {
    /// Where to POST.
    pub url: String,
    /// The gzipped body.
    pub body: Bytes,
    /// `Bearer <token>` (marked sensitive) when the exporter has a credential: send it as
    /// the `Authorization` header.
    pub authorization: Option<http::HeaderValue>,
}

/// What ingestion answered.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TransportResponse {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header, raw.
    pub retry_after: Option<String>,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// The body (a Breeze `TrackResponse`).
    pub body: Bytes,
    /// The body could not be read whole: it was longer than [`MAX_ANSWER_BYTES`], did not
    /// end within the body deadline, or broke off. `body` is then empty or partial and is
    /// never parsed: the status decides alone (a 206 is retried whole, SPEC 7.5). A body
    /// over [`MAX_ANSWER_BYTES`] counts as incomplete whatever the transport says.
    pub incomplete: bool,
}

impl TransportResponse {
    /// A response with a status and body.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            body: body.into(),
            ..Self::default()
        }
    }
}

/// A failure to get any response: the batch is retried.
#[derive(Debug)]
pub struct TransportError {
    message: String,
}

impl TransportError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transport error: {}", self.message)
    }
}

impl std::error::Error for TransportError {}

/// Sends a batch to ingestion. The default is [`HyperTransport`]; tests and benchmarks plug
/// in their own.
pub trait Transport: Send + Sync + 'static {
    /// POSTs one batch.
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>>;
}

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

/// POSTs with hyper: `Content-Type: application/x-json-stream`, `Content-Encoding: gzip`
/// (SPEC 7.4), `Authorization` when the request has one, HTTPS through rustls with feature
/// `rustls` (on by default).
///
/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body, and waits for it at most
/// [`DEFAULT_BODY_TIMEOUT`] after the head (see [`HyperTransport::body_timeout`]); past
/// either, the answer is [`incomplete`](TransportResponse::incomplete) and its connection is
/// closed.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    client: Client<Connector, Full<Bytes>>,
    body_timeout: Duration,
}

impl Default for HyperTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperTransport {
    /// A client with keep-alive connections.
    pub fn new() -> Self {
        // ring, named here rather than taken from the process: an application whose other
        // dependencies enable rustls' aws-lc-rs as well (reqwest's default TLS does) has no
        // process-wide default, and rustls would refuse to choose.
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .unwrap_or_else(|_| hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots())
            .https_or_http()
            .enable_http1()
            .build();
        #[cfg(not(feature = "rustls"))]
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            client,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }

    /// How long to wait for an answer's body once its head has arrived (default
    /// [`DEFAULT_BODY_TIMEOUT`]). The exporter's timeout still bounds the whole exchange.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }
}

impl Transport for HyperTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            let mut req = http::Request::post(&request.url)
                .header(CONTENT_TYPE, "application/x-json-stream")
                .header(CONTENT_ENCODING, "gzip");
            if let Some(auth) = request.authorization {
                req = req.header(AUTHORIZATION, auth);
            }
            let req = req
                .body(Full::new(request.body))
                .map_err(TransportError::new)?;
            let res = self
                .client
                .request(req)
                .await
                .map_err(TransportError::new)?;
            let header = |n| {
                res.headers()
                    .get(n)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (retry_after, location) = (header(RETRY_AFTER), header(LOCATION));
            let status = res.status().as_u16();
            let declared = res
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            // Never more than MAX_ANSWER_BYTES in memory, never waiting for a body that does
            // not end: the status has arrived, and is what matters most.
            let body = match declared {
                Some(n) if n > MAX_ANSWER_BYTES as u64 => None,
                _ => {
                    let limited = Limited::new(res.into_body(), MAX_ANSWER_BYTES);
                    match tokio::time::timeout(self.body_timeout, limited.collect()).await {
                        Ok(Ok(collected)) => Some(collected.to_bytes()),
                        Ok(Err(_)) | Err(_) => None,
                    }
                }
            };
            Ok(TransportResponse {
                status,
                retry_after,
                location,
                incomplete: body.is_none(),
                body: body.unwrap_or_default(),
            })
        })
    }
}
