//! Application Insights connection strings (SPEC 7.6).
//!
//! `;`-separated `key=value` pairs, split at the first `=`; keys are case-insensitive and
//! trimmed; empty entries are ignored; a duplicate key is an error; at most 4096 chars.
//! `InstrumentationKey` (a GUID) is required. The ingestion endpoint is `IngestionEndpoint`,
//! else `https://<Location.>dc.<EndpointSuffix>` when `EndpointSuffix` is set, else
//! `https://dc.services.visualstudio.com`. The Live Metrics endpoint is `LiveEndpoint`, else
//! `https://<Location.>live.<EndpointSuffix>` when `EndpointSuffix` is set, else
//! `https://rt.services.visualstudio.com`. `ApplicationId` is the own appId (SPEC 5.2).
//! `AADAudience` is the audience of Entra ID tokens for ingestion ([`ConnectionString::aad_scope`]).
//! The instrumentation key is never printed in full by `Debug` or `Display`.
//!
//! ```
//! use tracelink_core::ConnectionString;
//!
//! let cs: ConnectionString = "InstrumentationKey=00000000-1111-2222-3333-444444444444;\
//!     IngestionEndpoint=http://127.0.0.1:4318/;ApplicationId=abc".parse().unwrap();
//! assert_eq!(cs.ingestion_endpoint(), "http://127.0.0.1:4318");
//! assert_eq!(cs.track_url(), "http://127.0.0.1:4318/v2.1/track");
//! assert_eq!(cs.live_endpoint(), "https://rt.services.visualstudio.com");
//! assert_eq!(cs.application_id().map(|a| a.as_str()), Some("abc"));
//! assert!(!format!("{cs:?}").contains("444444444444"));
//! ```

use core::fmt;
use core::str::FromStr;

use crate::request_context::AppId;

/// Longest connection string accepted.
pub const MAX_LEN: usize = 4096;
/// The environment variable read by [`ConnectionString::from_env`].
pub const ENV_VAR: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/// The endpoint used when the connection string names none.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com";
/// The Live Metrics endpoint used when the connection string names none.
pub const DEFAULT_LIVE_ENDPOINT: &str = "https://rt.services.visualstudio.com";

/// The scope of Entra ID (Azure AD) tokens for ingestion when the connection string names no
/// `AADAudience`: the Azure Monitor audience `https://monitor.azure.com/` and `/.default`,
/// as every Application Insights SDK asks for it.
pub const DEFAULT_AAD_SCOPE: &str = "https://monitor.azure.com//.default";

/// A parsed connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    instrumentation_key: String,
    ingestion_endpoint: String,
    live_endpoint: String,
    application_id: Option<AppId>,
    aad_audience: Option<String>,
}

/// Why a connection string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionStringError {
    kind: ConnectionStringErrorKind,
}

/// What was wrong with a connection string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionStringErrorKind {
    /// Empty, or only separators and spaces.
    Empty,
    /// Longer than 4096 chars.
    TooLong,
    /// An entry without `=` or with an empty key.
    MalformedPair,
    /// A key given twice.
    DuplicateKey,
    /// No `InstrumentationKey`.
    MissingInstrumentationKey,
    /// `InstrumentationKey` is not a GUID.
    InvalidInstrumentationKey,
    /// An endpoint is not an `http` or `https` URL.
    InvalidEndpoint,
    /// `ApplicationId` is not a valid appId (SPEC 5.2).
    InvalidApplicationId,
    /// The environment variable is not set.
    NotSet,
}

impl ConnectionStringError {
    fn new(kind: ConnectionStringErrorKind) -> Self {
        Self { kind }
    }

    /// What was wrong.
    pub fn kind(&self) -> ConnectionStringErrorKind {
        self.kind
    }
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConnectionStringErrorKind::*;
        f.write_str(match self.kind {
            Empty => "connection string is empty",
            TooLong => "connection string is longer than 4096 chars",
            MalformedPair => "connection string has an entry that is not key=value",
            DuplicateKey => "connection string has a duplicate key",
            MissingInstrumentationKey => "connection string has no InstrumentationKey",
            InvalidInstrumentationKey => "connection string InstrumentationKey is not a GUID",
            InvalidEndpoint => "connection string endpoint is not an http(s) URL",
            InvalidApplicationId => "connection string ApplicationId is not a valid appId",
            NotSet => "APPLICATIONINSIGHTS_CONNECTION_STRING is not set",
        })
    }
}

impl std::error::Error for ConnectionStringError {}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn endpoint(url: &str) -> Result<String, ConnectionStringError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .filter(|r| !r.is_empty() && !r.contains(char::is_whitespace));
    match rest {
        Some(_) => Ok(url.to_owned()),
        None => Err(ConnectionStringError::new(
            ConnectionStringErrorKind::InvalidEndpoint,
        )),
    }
}

impl ConnectionString {
    /// Parses a connection string (SPEC 7.6).
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        use ConnectionStringErrorKind::*;
        let err = ConnectionStringError::new;
        if s.chars().count() > MAX_LEN {
            return Err(err(TooLong));
        }
        let mut pairs: Vec<(String, &str)> = Vec::new();
        for entry in s.split(';') {
            if entry.trim().is_empty() {
                continue;
            }
            let (k, v) = entry.split_once('=').ok_or(err(MalformedPair))?;
            let k = k.trim().to_ascii_lowercase();
            if k.is_empty() {
                return Err(err(MalformedPair));
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(err(DuplicateKey));
            }
            pairs.push((k, v.trim()));
        }
        if pairs.is_empty() {
            return Err(err(Empty));
        }
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let ikey = get("instrumentationkey")
            .filter(|v| !v.is_empty())
            .ok_or(err(MissingInstrumentationKey))?;
        if !is_guid(ikey) {
            return Err(err(InvalidInstrumentationKey));
        }
        let ingestion_endpoint = match (get("ingestionendpoint"), get("endpointsuffix")) {
            (Some(e), _) if !e.is_empty() => endpoint(e)?,
            (_, Some(suffix)) if !suffix.is_empty() => {
                let suffix = suffix.trim_matches('.');
                match get("location").filter(|l| !l.is_empty()) {
                    Some(loc) => endpoint(&format!("https://{loc}.dc.{suffix}"))?,
                    None => endpoint(&format!("https://dc.{suffix}"))?,
                }
            }
            _ => DEFAULT_INGESTION_ENDPOINT.to_owned(),
        };
        let live_endpoint = match (get("liveendpoint"), get("endpointsuffix")) {
            (Some(e), _) if !e.is_empty() => endpoint(e)?,
            (_, Some(suffix)) if !suffix.is_empty() => {
                let suffix = suffix.trim_matches('.');
                match get("location").filter(|l| !l.is_empty()) {
                    Some(loc) => endpoint(&format!("https://{loc}.live.{suffix}"))?,
                    None => endpoint(&format!("https://live.{suffix}"))?,
                }
            }
            _ => DEFAULT_LIVE_ENDPOINT.to_owned(),
        };
        let application_id = match get("applicationid").filter(|a| !a.is_empty()) {
            Some(a) => Some(AppId::new(a).map_err(|_| err(InvalidApplicationId))?),
            None => None,
        };
        let aad_audience = get("aadaudience")
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        Ok(Self {
            instrumentation_key: ikey.to_owned(),
            ingestion_endpoint,
            live_endpoint,
            application_id,
            aad_audience,
        })
    }

    /// Reads `APPLICATIONINSIGHTS_CONNECTION_STRING`.
    pub fn from_env() -> Result<Self, ConnectionStringError> {
        match std::env::var(ENV_VAR) {
            Ok(s) => Self::parse(&s),
            Err(_) => Err(ConnectionStringError::new(
                ConnectionStringErrorKind::NotSet,
            )),
        }
    }

    /// The instrumentation key (a GUID). Do not log it.
    pub fn instrumentation_key(&self) -> &str {
        &self.instrumentation_key
    }

    /// The instrumentation key with all but its first 8 chars masked, for logs.
    pub fn redacted_instrumentation_key(&self) -> String {
        format!("{}-****", &self.instrumentation_key[..8])
    }

    /// The ingestion endpoint, without a trailing `/`.
    pub fn ingestion_endpoint(&self) -> &str {
        &self.ingestion_endpoint
    }

    /// `<IngestionEndpoint>/v2.1/track` (SPEC 7.4).
    pub fn track_url(&self) -> String {
        format!("{}/v2.1/track", self.ingestion_endpoint)
    }

    /// The Live Metrics (QuickPulse) endpoint, without a trailing `/`: `LiveEndpoint`, else
    /// one built from `EndpointSuffix` and `Location`, else [`DEFAULT_LIVE_ENDPOINT`].
    ///
    /// ```
    /// use tracelink_core::ConnectionString;
    ///
    /// let cs = ConnectionString::parse("InstrumentationKey=00000000-1111-2222-3333-444444444444;\
    ///     LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/").unwrap();
    /// assert_eq!(cs.live_endpoint(), "https://westeurope.livediagnostics.monitor.azure.com");
    /// ```
    pub fn live_endpoint(&self) -> &str {
        &self.live_endpoint
    }

    /// The own application id, from `ApplicationId`.
    pub fn application_id(&self) -> Option<&AppId> {
        self.application_id.as_ref()
    }

    /// `AADAudience`: the audience of Entra ID tokens for ingestion, for sovereign clouds
    /// (`https://monitor.azure.us/`, ...).
    pub fn aad_audience(&self) -> Option<&str> {
        self.aad_audience.as_deref()
    }

    /// The scope to ask an Entra ID credential for: [`DEFAULT_AAD_SCOPE`] without
    /// `AADAudience`; the audience itself when it ends in `/.default` (as the Node SDK takes
    /// it); else the audience followed by `/.default` (as the .NET SDK makes it, so
    /// `https://monitor.azure.us/` asks for `https://monitor.azure.us//.default`).
    ///
    /// ```
    /// use tracelink_core::ConnectionString;
    ///
    /// let ikey = "InstrumentationKey=00000000-1111-2222-3333-444444444444";
    /// let cs = ConnectionString::parse(ikey).unwrap();
    /// assert_eq!(cs.aad_scope(), "https://monitor.azure.com//.default");
    /// let cs = ConnectionString::parse(&format!("{ikey};AADAudience=https://monitor.azure.us/")).unwrap();
    /// assert_eq!(cs.aad_audience(), Some("https://monitor.azure.us/"));
    /// assert_eq!(cs.aad_scope(), "https://monitor.azure.us//.default");
    /// ```
    pub fn aad_scope(&self) -> String {
        match self.aad_audience.as_deref() {
            None => DEFAULT_AAD_SCOPE.to_owned(),
            Some(a) if a.ends_with("/.default") => a.to_owned(),
            Some(a) => format!("{a}/.default"),
        }
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("instrumentation_key", &self.redacted_instrumentation_key())
            .field("ingestion_endpoint", &self.ingestion_endpoint)
            .field("live_endpoint", &self.live_endpoint)
            .field("application_id", &self.application_id)
            .field("aad_audience", &self.aad_audience)
            .finish()
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InstrumentationKey={};IngestionEndpoint={}",
            self.redacted_instrumentation_key(),
            self.ingestion_endpoint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionStringErrorKind::*;
    use proptest::prelude::*;

    const IKEY: &str = "00000000-1111-2222-3333-444444444444";

    fn kind(s: &str) -> ConnectionStringErrorKind {
        ConnectionString::parse(s).unwrap_err().kind()
    }

    #[test]
    fn spec_7_6_endpoints() {
        let cs = ConnectionString::parse(&format!("InstrumentationKey={IKEY}")).unwrap();
        assert_eq!(cs.ingestion_endpoint(), DEFAULT_INGESTION_ENDPOINT);
        let cs = ConnectionString::parse(&format!(
            " instrumentationkey = {IKEY} ;;EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2;"
        ))
        .unwrap();
        assert_eq!(
            cs.ingestion_endpoint(),
            "https://chinaeast2.dc.applicationinsights.azure.cn"
        );
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};EndpointSuffix=ai.example"
        ))
        .unwrap();
        assert_eq!(cs.ingestion_endpoint(), "https://dc.ai.example");
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;EndpointSuffix=x"
        ))
        .unwrap();
        assert_eq!(
            cs.track_url(),
            "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track"
        );
        // Values may contain '=': split at the first one only.
        let cs = ConnectionString::parse(&format!("InstrumentationKey={IKEY};Authorization=a=b"))
            .unwrap();
        assert_eq!(cs.instrumentation_key(), IKEY);
    }

    #[test]
    fn spec_7_6_live_endpoints() {
        let cs = ConnectionString::parse(&format!("InstrumentationKey={IKEY}")).unwrap();
        assert_eq!(cs.live_endpoint(), DEFAULT_LIVE_ENDPOINT);
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:7421;liveendpoint = http://127.0.0.1:7421/ "
        ))
        .unwrap();
        assert_eq!(cs.live_endpoint(), "http://127.0.0.1:7421");
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2"
        ))
        .unwrap();
        assert_eq!(
            cs.live_endpoint(),
            "https://chinaeast2.live.applicationinsights.azure.cn"
        );
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};EndpointSuffix=ai.example;LiveEndpoint=https://live.example/"
        ))
        .unwrap();
        assert_eq!(cs.live_endpoint(), "https://live.example");
        let cs = ConnectionString::parse(&format!(
            "InstrumentationKey={IKEY};EndpointSuffix=ai.example"
        ))
        .unwrap();
        assert_eq!(cs.live_endpoint(), "https://live.ai.example");
        assert_eq!(
            kind(&format!("InstrumentationKey={IKEY};LiveEndpoint=ws://x")),
            InvalidEndpoint
        );
    }

    #[test]
    fn spec_7_6_typed_errors() {
        assert_eq!(kind(""), Empty);
        assert_eq!(kind(" ; ;"), Empty);
        assert_eq!(
            kind(&format!(
                "InstrumentationKey={IKEY};{}",
                "x=y;".repeat(1100)
            )),
            TooLong
        );
        assert_eq!(
            kind(&format!("InstrumentationKey={IKEY};oops")),
            MalformedPair
        );
        assert_eq!(
            kind(&format!("InstrumentationKey={IKEY};=x")),
            MalformedPair
        );
        assert_eq!(
            kind(&format!(
                "InstrumentationKey={IKEY};INSTRUMENTATIONKEY={IKEY}"
            )),
            DuplicateKey
        );
        assert_eq!(
            kind("IngestionEndpoint=https://x"),
            MissingInstrumentationKey
        );
        assert_eq!(kind("InstrumentationKey="), MissingInstrumentationKey);
        assert_eq!(
            kind("InstrumentationKey=not-a-guid"),
            InvalidInstrumentationKey
        );
        assert_eq!(
            kind(&format!(
                "InstrumentationKey={IKEY};IngestionEndpoint=ftp://x"
            )),
            InvalidEndpoint
        );
    }

    #[test]
    fn spec_7_6_never_prints_the_key() {
        let cs = ConnectionString::parse(&format!("InstrumentationKey={IKEY}")).unwrap();
        for s in [format!("{cs:?}"), cs.to_string()] {
            assert!(!s.contains(IKEY) && !s.contains("444444444444"), "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = ConnectionString::parse(&s);
        }
    }
}
