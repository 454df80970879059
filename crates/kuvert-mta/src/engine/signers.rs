//! The DKIM keys of the sending domains, parsed once and kept (parsing an RSA key costs more
//! than signing with it), read again after `KEY_RECHECK_MS`: a key that began or stopped
//! signing (a rotation) is seen within that time.

use std::sync::Arc;

use kuvert_core::id::DomainId;

use super::Inner;
use crate::dkim::DkimSigner;

/// Parsed DKIM keys kept; past this the cache starts again (parsing one costs about a
/// millisecond).
pub(super) const MAX_SIGNERS: usize = 1_000;

impl Inner {
    pub(super) async fn signer(&self, domain: &DomainId) -> Result<Arc<DkimSigner>, String> {
        let now = self.store.clock().now().millis();
        let fresh = |at: i64| (0..kuvert_store::KEY_RECHECK_MS).contains(&(now - at));
        if let Some((s, at)) = self.signers.lock().expect("signers").get(domain)
            && fresh(*at)
        {
            return Ok(s.clone());
        }
        // Read again: a key whose account is gone must fail here, not sign from the cache.
        self.signers.lock().expect("signers").remove(domain);
        let d = self
            .store
            .domain_by_id(domain)
            .await
            .map_err(|e| e.to_string())?;
        // Active keys only: a key whose record is not yet published never signs.
        let keys = self
            .store
            .dkim_signing_keys(&d)
            .await
            .map_err(|e| e.to_string())?;
        let signer = tokio::task::spawn_blocking(move || DkimSigner::new(&d.name, &keys))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let signer = Arc::new(signer);
        self.signers
            .lock()
            .expect("signers")
            .insert(domain.clone(), (signer.clone(), now));
        Ok(signer)
    }
}
