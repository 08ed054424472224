//! Service key endpoints: wrap, unwrap, rewrap, rotate, retire and status of an
//! account's versioned service keys.

use super::*;

impl KeyService {
    /// The per-account key-encryption key of service key `version`: bound to the account
    /// name as well, so a wrapped key never opens for another account.
    fn kek(&self, a: &Account, version: u32) -> Result<SecretKey, ApiError> {
        let Some(sealed) = a.service.keys.get(&version) else {
            let retired = version >= 1 && version < a.service.current;
            return Err(if retired {
                ApiError::Gone(format!(
                    "service key version {version} was retired: keys wrapped under it can no \
                     longer be unwrapped"
                ))
            } else {
                bad(format!("service key version {version} does not exist"))
            });
        };
        let raw = self
            .master
            .unseal(&a.name, &format!("service-key/{version}"), sealed)?;
        let key = SecretKey::from_slice(&raw)
            .ok_or_else(|| ApiError::Internal(format!("service key {version} is not 32 bytes")))?;
        Ok(crypto::derive_key(
            crate::crypto::domains::SERVICE_KEK,
            &[key.expose(), a.name.as_bytes()],
        ))
    }

    fn ctx(s: &str) -> Result<Vec<u8>, ApiError> {
        let ctx = unhex("ctx", s, api::MAX_CTX)?;
        if ctx.is_empty() {
            return Err(bad("ctx must not be empty"));
        }
        Ok(ctx)
    }

    fn wrap_with(&self, a: &Account, ctx: &[u8], key: &[u8; 32]) -> Result<String, ApiError> {
        let v = a.service.current;
        let mut out = v.to_le_bytes().to_vec();
        out.extend(crypto::seal(&self.kek(a, v)?, Suite::XtsBlake3, ctx, key)?);
        Ok(hex::encode(out))
    }

    fn unwrap_with(
        &self,
        a: &Account,
        ctx: &[u8],
        wrapped: &str,
    ) -> Result<Zeroizing<[u8; 32]>, ApiError> {
        let w = unhex("wrapped", wrapped, 4 + 32 + crypto::SEAL_OVERHEAD)?;
        self.unwrap_bytes(a, ctx, &w)
    }

    /// [`Self::unwrap_with`] of raw bytes: `u32 LE service key version | sealed key`.
    pub(super) fn unwrap_bytes(
        &self,
        a: &Account,
        ctx: &[u8],
        w: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, ApiError> {
        if w.len() > 4 + 32 + crypto::SEAL_OVERHEAD {
            return Err(bad("the wrapped value is too long for a wrapped key"));
        }
        let (v, sealed) = w
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("wrapped is too short"))?;
        let kek = self.kek(a, u32::from_le_bytes(*v))?;
        let plain = Zeroizing::new(crypto::open(&kek, Suite::XtsBlake3, ctx, sealed).map_err(|_| {
            bad("the wrapped key does not open for this account and context (another account's, \
                 another context, or damaged)")
        })?);
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(bad("the wrapped value is not a 32-byte key"));
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }

    fn service_status_of(a: &Account) -> ServiceStatus {
        ServiceStatus {
            current: a.service.current,
            live: a.service.keys.keys().copied().collect(),
        }
    }

    pub(crate) fn service_wrap(&self, c: &Caller, req: WrapReq) -> Result<WrappedResp, ApiError> {
        let a = self.session_account(c, Recency::Stale)?;
        let ctx = Self::ctx(&req.ctx)?;
        let key = unhex_exact::<32>("key", &req.key)?;
        Ok(WrappedResp {
            wrapped: self.wrap_with(&a, &ctx, &key)?,
        })
    }

    /// The key fetch of a standard category: one read of the session and the account.
    pub(crate) fn service_unwrap(&self, c: &Caller, req: WrappedReq) -> Result<KeyResp, ApiError> {
        let a = self.session_account(c, Recency::Stale)?;
        let ctx = Self::ctx(&req.ctx)?;
        let key = self.unwrap_with(&a, &ctx, &req.wrapped)?;
        Ok(KeyResp {
            key: hex::encode(&key[..]),
        })
    }

    pub(crate) fn service_rewrap(
        &self,
        c: &Caller,
        req: WrappedReq,
    ) -> Result<WrappedResp, ApiError> {
        let a = self.session_account(c, Recency::Stale)?;
        let ctx = Self::ctx(&req.ctx)?;
        let key = self.unwrap_with(&a, &ctx, &req.wrapped)?;
        Ok(WrappedResp {
            wrapped: self.wrap_with(&a, &ctx, &key)?,
        })
    }

    pub(crate) fn service_rotate(&self, c: &Caller) -> Result<ServiceStatus, ApiError> {
        let name = self.session(c)?;
        self.locked_session(c, &name, Recency::Stale, |tx| {
            let mut a = Self::load(tx, &name)?;
            let v = a
                .service
                .current
                .checked_add(1)
                .ok_or_else(|| ApiError::Conflict("no service key versions left".into()))?;
            let key = crypto::random_key()?;
            let sealed = self
                .master
                .seal(&name, &format!("service-key/{v}"), key.expose())?;
            a.service.keys.insert(v, sealed);
            a.service.current = v;
            tx.put_account(&a)?;
            log::info!("account {name}: service key rotated to version {v}");
            Ok(Self::service_status_of(&a))
        })
    }

    pub(crate) fn service_retire(
        &self,
        c: &Caller,
        req: RetireReq,
    ) -> Result<ServiceStatus, ApiError> {
        let name = self.recent_session(c)?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            if req.below > a.service.current {
                return Err(bad(format!(
                    "cannot retire the current service key version {} (below = {})",
                    a.service.current, req.below
                )));
            }
            let before = a.service.keys.len();
            a.service.keys.retain(|v, _| *v >= req.below);
            if a.service.keys.len() != before {
                tx.put_account(&a)?;
                log::info!(
                    "account {name}: service key versions below {} destroyed",
                    req.below
                );
            }
            Ok(Self::service_status_of(&a))
        })
    }

    pub(crate) fn service_status(&self, c: &Caller) -> Result<ServiceStatus, ApiError> {
        Ok(Self::service_status_of(
            &self.session_account(c, Recency::Stale)?,
        ))
    }
}
