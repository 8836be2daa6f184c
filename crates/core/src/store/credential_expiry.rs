//! When the credentials that sign presigned URLs expire, known without asking the
//! credential chain for every URL.
//!
//! The SDK caches credentials in each client's identity cache and refreshes them
//! shortly before they expire; the provider itself does not cache (with an instance
//! role or SSO, asking it is a network call). So the presigning client gets its
//! credentials through [`ExpiryRecorder`], which notes the expiry of whatever it hands
//! out: that is the expiry of the credentials the client signs with until its next
//! refresh, and a refresh only ever moves it later.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};

#[derive(Debug, Clone)]
pub(super) struct ExpiryRecorder {
    inner: SharedCredentialsProvider,
    /// `None` until credentials were first provided; then their expiry (`None` for
    /// credentials that do not expire, such as plain access keys).
    seen: Arc<Mutex<Option<Option<SystemTime>>>>,
}

impl ExpiryRecorder {
    pub(super) fn new(inner: SharedCredentialsProvider) -> Self {
        ExpiryRecorder {
            inner,
            seen: Arc::default(),
        }
    }

    /// The expiry of the credentials the client signs with; asks the provider only
    /// before the client first has. `None`: no expiry (or none could be learned).
    pub(super) async fn expiry(&self) -> Option<SystemTime> {
        if let Some(seen) = *self.lock() {
            return seen;
        }
        self.provide_credentials().await.ok()?.expiry()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Option<SystemTime>>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ProvideCredentials for ExpiryRecorder {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let credentials = self.inner.provide_credentials().await?;
            *self.lock() = Some(credentials.expiry());
            Ok(credentials)
        })
    }
}
