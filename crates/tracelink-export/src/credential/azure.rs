//! [`AzureCredential`]: Entra ID tokens from the Azure SDK for Rust's credentials.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use azure_core::credentials::{Secret, TokenCredential};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
};

use super::{AccessToken, CredentialError, TokenProvider};
use crate::transport::BoxFuture;

const NONE_CHOSEN: usize = usize::MAX;

/// Entra ID tokens from the Azure SDK's credentials (crate `azure_identity`), for
/// [`ExporterBuilder::credential`](crate::ExporterBuilder::credential). Feature
/// `azure-identity`.
///
/// The identity needs the role **Monitoring Metrics Publisher** on the Application Insights
/// resource (or its resource group), for example
/// `az role assignment create --assignee <principal id> --role "Monitoring Metrics Publisher"
/// --scope <resource id of the Application Insights resource>`. The connection string stays
/// as it is (`InstrumentationKey=…;IngestionEndpoint=…`); `AADAudience=…` changes the token's
/// audience for sovereign clouds. With local authentication disabled on the resource, posts
/// without a token are refused.
///
/// TLS: the credentials talk to their endpoints with reqwest (through `azure_core`), which
/// this crate builds without a TLS backend, so that it adds no second rustls crypto provider
/// to the application (two providers make rustls refuse to pick one by itself). Managed
/// identity endpoints are plain HTTP and the Azure CLI runs `az`, so they need none; workload
/// identity and service principals ask `https://login.microsoftonline.com`, which needs the
/// application's reqwest to have one, e.g. `reqwest = "0.13"` with its default features
/// (rustls), or `features = ["native-tls"]`.
///
/// ```no_run
/// use tracelink_export::{AzureCredential, Exporter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let exporter = Exporter::builder_from_env()
///     .credential(AzureCredential::default_chain()?)
///     .build()?;
/// # let _ = exporter; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureCredential {
    sources: Arc<[(&'static str, Arc<dyn TokenCredential>)]>,
    /// The source that gave the first token, used from then on.
    chosen: Arc<AtomicUsize>,
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.sources.iter().map(|(n, _)| *n).collect();
        f.debug_struct("AzureCredential")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

fn failed(e: azure_core::Error) -> CredentialError {
    CredentialError::new(e)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AzureCredential {
    /// Any credential of the Azure SDK.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self::of(vec![("credential", credential)])
    }

    fn of(sources: Vec<(&'static str, Arc<dyn TokenCredential>)>) -> Self {
        Self {
            sources: sources.into(),
            chosen: Arc::new(AtomicUsize::new(NONE_CHOSEN)),
        }
    }

    /// The managed identity of the Azure resource the service runs on (App Service,
    /// Functions, a VM, AKS with pod identity): system-assigned, or the user-assigned
    /// identity with this client id.
    pub fn managed_identity(client_id: Option<&str>) -> Result<Self, CredentialError> {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_owned())),
            ..Default::default()
        };
        let c = ManagedIdentityCredential::new(Some(options)).map_err(failed)?;
        Ok(Self::of(vec![("managed identity", c)]))
    }

    /// Workload identity federation (AKS workload identity): `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`, as the AKS webhook sets them.
    pub fn workload_identity() -> Result<Self, CredentialError> {
        let c = WorkloadIdentityCredential::new(None).map_err(failed)?;
        Ok(Self::of(vec![("workload identity", c)]))
    }

    /// The signed-in user of the Azure CLI (`az login`), for development machines.
    pub fn azure_cli() -> Result<Self, CredentialError> {
        let c = AzureCliCredential::new(None).map_err(failed)?;
        Ok(Self::of(vec![("Azure CLI", c)]))
    }

    /// A service principal's secret from the environment: `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
    pub fn environment() -> Result<Self, CredentialError> {
        let var = |name: &'static str| {
            env(name).ok_or_else(|| CredentialError::new(format!("{name} is not set")))
        };
        let (tenant, client, secret) = (
            var("AZURE_TENANT_ID")?,
            var("AZURE_CLIENT_ID")?,
            var("AZURE_CLIENT_SECRET")?,
        );
        let c = ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)
            .map_err(failed)?;
        Ok(Self::of(vec![("environment", c)]))
    }

    /// The credentials the environment makes possible, tried in the order of the other Azure
    /// SDKs' `DefaultAzureCredential`: [`environment`](Self::environment) when
    /// `AZURE_CLIENT_SECRET` is set, [`workload_identity`](Self::workload_identity) when
    /// `AZURE_FEDERATED_TOKEN_FILE` is set, [`managed_identity`](Self::managed_identity)
    /// (user-assigned when `AZURE_CLIENT_ID` is set), then the [`azure_cli`](Self::azure_cli).
    /// The first that gives a token is used from then on.
    pub fn default_chain() -> Result<Self, CredentialError> {
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if env("AZURE_CLIENT_SECRET").is_some() {
            sources.extend(Self::environment()?.sources.iter().cloned());
        }
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            sources.extend(Self::workload_identity()?.sources.iter().cloned());
        }
        let client_id = env("AZURE_CLIENT_ID");
        if let Ok(mi) = Self::managed_identity(client_id.as_deref()) {
            sources.extend(mi.sources.iter().cloned());
        }
        if let Ok(cli) = Self::azure_cli() {
            sources.extend(cli.sources.iter().cloned());
        }
        if sources.is_empty() {
            return Err(CredentialError::new(
                "no Azure credential is available here",
            ));
        }
        Ok(Self::of(sources))
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, CredentialError> {
        let chosen = self.chosen.load(Relaxed);
        let order: Vec<usize> = if chosen == NONE_CHOSEN {
            (0..self.sources.len()).collect()
        } else {
            vec![chosen]
        };
        let mut errors = Vec::new();
        for i in order {
            let (name, source) = &self.sources[i];
            match source.get_token(&[scope], None).await {
                Ok(t) => {
                    self.chosen.store(i, Relaxed);
                    let secs = u64::try_from(t.expires_on.unix_timestamp()).unwrap_or(0);
                    let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                    return Ok(AccessToken::new(t.token.secret(), expires_at));
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(CredentialError::new(errors.join("; ")))
    }
}

impl TokenProvider for AzureCredential {
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, CredentialError>> {
        Box::pin(self.fetch(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::TokenRequestOptions;

    #[derive(Debug)]
    struct Fixed(Option<&'static str>);

    #[async_trait::async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, ["https://monitor.azure.com//.default"]);
            match self.0 {
                Some(t) => Ok(azure_core::credentials::AccessToken::new(
                    t,
                    azure_core::time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
                )),
                None => Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "unavailable",
                )),
            }
        }
    }

    /// The credentials are made without the network (and their HTTP client finds a crypto
    /// provider).
    #[test]
    fn credentials_are_made_offline() {
        let mi = AzureCredential::managed_identity(Some("00000000-0000-0000-0000-000000000001"));
        assert!(format!("{:?}", mi.unwrap()).contains("managed identity"));
        assert!(AzureCredential::azure_cli().is_ok());
        assert!(AzureCredential::default_chain().is_ok());
    }

    #[tokio::test]
    async fn the_first_source_that_gives_a_token_is_kept() {
        let c = AzureCredential::of(vec![
            ("a", Arc::new(Fixed(None))),
            ("b", Arc::new(Fixed(Some("tok")))),
        ]);
        let t = c
            .token("https://monitor.azure.com//.default")
            .await
            .unwrap();
        assert_eq!(t.secret(), "tok");
        assert_eq!(
            t.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
        assert_eq!(c.chosen.load(Relaxed), 1);
        let none = AzureCredential::new(Arc::new(Fixed(None)));
        let e = none
            .token("https://monitor.azure.com//.default")
            .await
            .unwrap_err();
        assert!(
            std::error::Error::source(&e)
                .unwrap()
                .to_string()
                .contains("unavailable")
        );
        assert!(format!("{c:?}").contains("\"a\", \"b\""));
    }
}
