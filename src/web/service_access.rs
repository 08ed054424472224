//! [`AccountAccess`] over the key service: one account's unwraps and records, through the
//! service's web methods (its database), while the front serves that account.

use super::access::{AccessError, AccountAccess};
use crate::crypto::SecretKey;
use crate::format::manifest::SignedManifest;
use crate::keyservice::server::{ApiError, KeyService};
use crate::volume::{HeadWitness, WitnessError};
use std::sync::Arc;

/// `web_seen.what` of the manifest (FORMAT.md §9d).
const MANIFEST: u32 = u32::MAX;

fn service(e: ApiError) -> AccessError {
    AccessError::Storage(e.to_string())
}

/// One account's access through the key service, for one web session.
pub(crate) struct ServiceAccess {
    svc: Arc<KeyService>,
    account: String,
    /// The web session whose released keys open e2e categories (ADP).
    session: String,
    approved: bool,
}

impl ServiceAccess {
    pub(crate) fn new(
        svc: Arc<KeyService>,
        account: &str,
        session: &str,
        approved: bool,
    ) -> Arc<ServiceAccess> {
        Arc::new(ServiceAccess {
            svc,
            account: account.to_string(),
            session: session.to_string(),
            approved,
        })
    }
}

impl AccountAccess for ServiceAccess {
    fn unwrap_service(&self, ctx: &[u8], wrapped: &[u8]) -> Result<SecretKey, AccessError> {
        self.svc
            .web_unwrap(&self.account, ctx, wrapped)
            .map_err(|e| match e {
                ApiError::BadRequest(why) | ApiError::Gone(why) => AccessError::Unwrap(why),
                e => service(e),
            })
    }

    fn trusted_manifest(&self) -> Result<Vec<u8>, AccessError> {
        match self
            .svc
            .web_seen(&self.account, MANIFEST)
            .map_err(service)?
        {
            Some((_, _, Some(obj))) => Ok(obj),
            _ => Err(AccessError::Off),
        }
    }

    fn advance_manifest(&self, obj: &[u8], counter: u64) -> Result<(), AccessError> {
        let sm = SignedManifest::decode(obj)
            .map_err(|e| AccessError::Storage(format!("a manifest to record: {e}")))?;
        let hash = crate::crypto::hash(&sm.body);
        self.svc
            .web_record_seen(&self.account, MANIFEST, counter, &hash, Some(obj))
            .map_err(service)
    }

    fn adp_approved(&self) -> bool {
        self.approved
    }

    fn released(&self, category: u32, version: u32) -> Result<Option<SecretKey>, AccessError> {
        if !self.approved {
            return Ok(None);
        }
        self.svc
            .web_released(&self.account, &self.session, category, version)
            .map_err(service)
    }

    fn witness(&self) -> Arc<dyn HeadWitness> {
        Arc::new(ServiceWitness {
            svc: self.svc.clone(),
            account: self.account.clone(),
        })
    }
}

/// The web front's record of heads seen, in the key service's database: shared by every
/// replica and every session of the account, and only ever raised.
struct ServiceWitness {
    svc: Arc<KeyService>,
    account: String,
}

impl HeadWitness for ServiceWitness {
    fn seen(&self, category: u32) -> Result<Option<(u64, [u8; 32])>, WitnessError> {
        let row = self
            .svc
            .web_seen(&self.account, category)
            .map_err(|e| WitnessError::Save(e.to_string()))?;
        match row {
            None => Ok(None),
            Some((counter, hash, _)) => {
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| WitnessError::Save("a damaged record of heads seen".into()))?;
                Ok(Some((counter, hash)))
            }
        }
    }

    fn record(&self, category: u32, counter: u64, hash: [u8; 32]) -> Result<(), WitnessError> {
        self.svc
            .web_record_seen(&self.account, category, counter, &hash, None)
            .map_err(|e| WitnessError::Save(e.to_string()))
    }
}
