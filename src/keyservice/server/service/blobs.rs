//! Blob endpoints: an account's named records and its (single) escrow record with its
//! wrong-proof counter.

use super::*;

impl KeyService {
    fn record_field(name: &str) -> String {
        format!("record/{name}")
    }

    pub(crate) fn record_put(&self, c: &Caller, req: RecordPutReq) -> Result<Empty, ApiError> {
        let account = self.session(c)?;
        check_record_name(&req.name)?;
        let value = Zeroizing::new(unhex("value", &req.value, api::MAX_VALUE)?);
        self.locked_session(c, &account, Recency::Stale, |tx| {
            if tx.record(&account, &req.name)?.is_none()
                && tx.record_names(&account)?.len() >= api::MAX_RECORDS
            {
                return Err(ApiError::Conflict(format!(
                    "this account already has {} records, the most allowed",
                    api::MAX_RECORDS
                )));
            }
            let sealed = self
                .master
                .seal_raw(&account, &Self::record_field(&req.name), &value)?;
            tx.put_record(&account, &req.name, &sealed)?;
            Ok(Empty {})
        })
    }

    pub(crate) fn record_get(
        &self,
        c: &Caller,
        req: RecordNameReq,
    ) -> Result<RecordValueResp, ApiError> {
        let account = self.session(c)?;
        check_record_name(&req.name)?;
        self.locked_session(c, &account, Recency::Stale, |tx| {
            let sealed = tx
                .record(&account, &req.name)?
                .ok_or_else(|| ApiError::NotFound(format!("no record named {}", req.name)))?;
            let value = self
                .master
                .unseal_raw(&account, &Self::record_field(&req.name), &sealed)
                .map_err(|e| {
                    ApiError::Internal(format!("record {} of {account}: {e}", req.name))
                })?;
            Ok(RecordValueResp {
                value: hex::encode(&value[..]),
            })
        })
    }

    pub(crate) fn record_delete(&self, c: &Caller, req: RecordNameReq) -> Result<Empty, ApiError> {
        let account = self.recent_session(c)?;
        check_record_name(&req.name)?;
        self.locked_session(c, &account, Recency::Recent, |tx| {
            if tx.delete_record(&account, &req.name)? {
                Ok(Empty {})
            } else {
                Err(ApiError::NotFound(format!("no record named {}", req.name)))
            }
        })
    }

    pub(crate) fn record_list(&self, c: &Caller) -> Result<RecordListResp, ApiError> {
        let account = self.session(c)?;
        self.locked_session(c, &account, Recency::Stale, |tx| {
            Ok(RecordListResp {
                names: tx.record_names(&account)?,
            })
        })
    }

    pub(crate) fn escrow_put(&self, c: &Caller, req: EscrowPutReq) -> Result<Empty, ApiError> {
        let account = self.recent_session(c)?;
        let verifier = unhex_exact::<32>("verifier", &req.verifier)?;
        let blob = unhex("blob", &req.blob, api::MAX_VALUE)?;
        self.locked_session(c, &account, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &account)?;
            let e = Escrow {
                verifier: self
                    .master
                    .seal(&account, "escrow-verifier", &verifier[..])?,
                blob: self.master.seal(&account, "escrow-blob", &blob)?,
                failures: 0,
            };
            tx.put_escrow(&account, &e)?;
            if a.escrow_destroyed {
                a.escrow_destroyed = false;
                tx.put_account(&a)?;
            }
            log::info!("account {account}: escrow record stored");
            Ok(Empty {})
        })
    }

    pub(crate) fn escrow_open(
        &self,
        c: &Caller,
        req: EscrowOpenReq,
    ) -> Result<EscrowOpenResp, ApiError> {
        let account = self.session(c)?;
        let proof = Zeroizing::new(unhex("proof", &req.proof, MAX_PROOF)?);
        let key = format!("escrow:{account}");
        self.locked_session(c, &account, Recency::Stale, |tx| {
            let mut a = Self::load(tx, &account)?;
            if a.escrow_destroyed {
                // A crash between marking and deleting can leave the file: finish the job.
                tx.delete_escrow(&account)?;
                return Err(ApiError::EscrowDestroyed);
            }
            self.limit_check(tx, &key, c.ip)?;
            let mut e = tx
                .escrow(&account)?
                .ok_or_else(|| ApiError::NotFound("this account has no escrow record".into()))?;
            let verifier = self
                .master
                .unseal(&account, "escrow-verifier", &e.verifier)?;
            if crypto::ct_eq(&crypto::hash(&proof), &verifier) {
                let blob = self.master.unseal(&account, "escrow-blob", &e.blob)?;
                if e.failures != 0 {
                    e.failures = 0;
                    tx.put_escrow(&account, &e)?;
                }
                self.limit_success(tx, &key)?;
                log::info!("account {account}: escrow opened");
                return Ok(EscrowOpenResp {
                    blob: hex::encode(&blob[..]),
                });
            }
            self.limit_fail(tx, &key, c.ip)?;
            e.failures = e.failures.saturating_add(1);
            let attempts = self.cfg.escrow_attempts.max(1);
            if e.failures >= attempts {
                // Mark first, then delete: a crash in between still refuses every open.
                a.escrow_destroyed = true;
                tx.put_account(&a)?;
                tx.delete_escrow(&account)?;
                log::warn!("account {account}: escrow destroyed after {attempts} wrong proofs");
                return Err(ApiError::EscrowWrong { remaining: 0 });
            }
            tx.put_escrow(&account, &e)?;
            Err(ApiError::EscrowWrong {
                remaining: attempts - e.failures,
            })
        })
    }

    pub(crate) fn escrow_delete(&self, c: &Caller) -> Result<Empty, ApiError> {
        let account = self.recent_session(c)?;
        self.locked_session(c, &account, Recency::Recent, |tx| {
            if tx.delete_escrow(&account)? {
                log::info!("account {account}: escrow record deleted");
                Ok(Empty {})
            } else {
                Err(ApiError::NotFound(
                    "this account has no escrow record".into(),
                ))
            }
        })
    }
}
