//! What a logged-in [`Session`] can do: one method per session endpoint of the API.

use super::*;

impl Session {
    fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        req: &Req,
    ) -> Result<Resp, ClientError> {
        self.client.post(endpoint, Some(&self.token), req)
    }

    /// The same session through another address of the same service: another replica
    /// behind the load balancer, or the service restarted elsewhere. Sessions live in the
    /// service's database, so any of its replicas honours them.
    pub fn via(&self, client: &KeyClient) -> Session {
        Session {
            client: client.clone(),
            account: self.account.clone(),
            token: self.token.clone(),
            wrap_key: self.wrap_key.duplicate(),
            recent_until: Mutex::new(*self.recent_until.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The password-derived key the server never sees (for the caller's own wrapping).
    pub fn wrap_key(&self) -> &SecretKey {
        &self.wrap_key
    }

    /// Ends the session on the server.
    pub fn logout(self) -> Result<(), ClientError> {
        let _: Empty = self.post("logout", &Empty {})?;
        Ok(())
    }

    pub fn status(&self) -> Result<AccountStatus, ClientError> {
        self.post("account/status", &Empty {})
    }

    /// Whether the server (by this side's clock, a little early) still counts the session
    /// as recently authenticated, as the requests that change credentials or recovery
    /// need. A login with the password and a fresh TOTP code (or no TOTP enrolled) is;
    /// one through a remembered device is not.
    pub fn is_recent(&self) -> bool {
        let until = *self.recent_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// Proves the account's factors again: the password (derived with the account's
    /// salt, as at login) and, when TOTP is enrolled, a fresh code. The session is then
    /// recently authenticated for the server's window. A wrong password or code counts
    /// against the login rate limits.
    pub fn reauth(&self, password: &Password, totp: Option<&str>) -> Result<(), ClientError> {
        let (salt, kdf) = self.client.salt(&self.account)?;
        let k = keys::password_keys(password, &salt, kdf)?;
        let r: ReauthResp = self.post(
            "reauth",
            &ReauthReq {
                auth: hex::encode(k.auth.expose()),
                totp: totp.map(str::to_string),
            },
        )?;
        *self.recent_until.lock().unwrap_or_else(|p| p.into_inner()) =
            recent_deadline(r.recent_for);
        Ok(())
    }

    /// Turns the data recovery service (password reset with TOTP) on or off.
    pub fn set_drs(&self, on: bool) -> Result<AccountStatus, ClientError> {
        self.post("account/flags", &FlagsReq { drs: on })
    }

    /// Sets a new password; [`Session::wrap_key`] then returns the new password's key
    /// (take the old one first to rewrap what it protects). The server ends every other
    /// session of the account and forgets every remembered device; with
    /// `remember_device`, it returns a new device token for this one.
    pub fn change_password(
        &mut self,
        new_password: &Password,
        kdf: KdfParams,
        remember_device: bool,
    ) -> Result<Option<Zeroizing<String>>, ClientError> {
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt).map_err(KeyError::from)?;
        let k = keys::password_keys(new_password, &salt, kdf)?;
        let r: PasswordChangeResp = self.post(
            "password/change",
            &PasswordChangeReq {
                new_salt: hex::encode(salt),
                new_kdf: kdf,
                new_auth: hex::encode(k.auth.expose()),
                remember_device,
            },
        )?;
        self.wrap_key = k.wrap;
        Ok(r.device_token.map(Zeroizing::new))
    }

    /// Starts TOTP enrolment: the `otpauth://` URI (it holds the secret: show it once).
    pub fn totp_enroll(&self) -> Result<Zeroizing<String>, ClientError> {
        let r: TotpEnrollResp = self.post("totp/enroll", &Empty {})?;
        Ok(Zeroizing::new(r.uri))
    }

    /// Finishes enrolment with a code from the app; from then on logins need a code
    /// (or the device token returned here when `remember_device`).
    pub fn totp_confirm(
        &self,
        code: &str,
        remember_device: bool,
    ) -> Result<Option<Zeroizing<String>>, ClientError> {
        let r: TotpConfirmResp = self.post(
            "totp/confirm",
            &TotpConfirmReq {
                code: code.to_string(),
                remember_device,
            },
        )?;
        Ok(r.device_token.map(Zeroizing::new))
    }

    /// Forgets every remembered device; returns how many there were.
    pub fn revoke_device_tokens(&self) -> Result<u32, ClientError> {
        let r: RevokedResp = self.post("device-token/revoke-all", &Empty {})?;
        Ok(r.revoked)
    }

    /// Wraps `key` under the account's current service key, bound to `ctx`.
    pub fn service_wrap(&self, ctx: &[u8], key: &SecretKey) -> Result<Vec<u8>, ClientError> {
        let r: WrappedResp = self.post(
            "service/wrap",
            &WrapReq {
                ctx: hex::encode(ctx),
                key: hex::encode(key.expose()),
            },
        )?;
        unhex("wrapped", &r.wrapped)
    }

    pub fn service_unwrap(&self, ctx: &[u8], wrapped: &[u8]) -> Result<SecretKey, ClientError> {
        let r: KeyResp = self.post(
            "service/unwrap",
            &WrappedReq {
                ctx: hex::encode(ctx),
                wrapped: hex::encode(wrapped),
            },
        )?;
        let hex_key = Zeroizing::new(r.key);
        let mut raw = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key.as_str(), &mut raw[..])
            .map_err(|_| ClientError::Protocol("key is not 32 bytes of hex".into()))?;
        Ok(SecretKey::from_bytes(*raw))
    }

    /// Re-wraps a wrapped key under the current service key version.
    pub fn service_rewrap(&self, ctx: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, ClientError> {
        let r: WrappedResp = self.post(
            "service/rewrap",
            &WrappedReq {
                ctx: hex::encode(ctx),
                wrapped: hex::encode(wrapped),
            },
        )?;
        unhex("wrapped", &r.wrapped)
    }

    /// Makes a new service key version the current one.
    pub fn service_rotate(&self) -> Result<ServiceStatus, ClientError> {
        self.post("service/rotate", &Empty {})
    }

    /// Destroys service key versions below `below`: what they wrapped is gone for good.
    pub fn service_retire(&self, below: u32) -> Result<ServiceStatus, ClientError> {
        self.post("service/retire", &RetireReq { below })
    }

    pub fn service_status(&self) -> Result<ServiceStatus, ClientError> {
        self.post("service/status", &Empty {})
    }

    pub fn record_put(&self, name: &str, value: &[u8]) -> Result<(), ClientError> {
        let _: Empty = self.post(
            "record/put",
            &RecordPutReq {
                name: name.to_string(),
                value: hex::encode(value),
            },
        )?;
        Ok(())
    }

    /// A record's value; `NotFound` when there is none.
    pub fn record_get(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let r: RecordValueResp = self.post(
            "record/get",
            &RecordNameReq {
                name: name.to_string(),
            },
        )?;
        unhex("value", &r.value)
    }

    pub fn record_delete(&self, name: &str) -> Result<(), ClientError> {
        let _: Empty = self.post(
            "record/delete",
            &RecordNameReq {
                name: name.to_string(),
            },
        )?;
        Ok(())
    }

    pub fn record_list(&self) -> Result<Vec<String>, ClientError> {
        let r: RecordListResp = self.post("record/list", &Empty {})?;
        Ok(r.names)
    }

    /// Stores (or replaces) the account's escrow blob, released only to `proof` with
    /// `escrow_verifier(proof) == verifier`.
    pub fn escrow_put(&self, verifier: &[u8; 32], blob: &[u8]) -> Result<(), ClientError> {
        let _: Empty = self.post(
            "escrow/put",
            &EscrowPutReq {
                verifier: hex::encode(verifier),
                blob: hex::encode(blob),
            },
        )?;
        Ok(())
    }

    /// The escrow blob, for the right proof. `EscrowWrong { remaining }` otherwise;
    /// `EscrowDestroyed` once too many wrong proofs destroyed it.
    pub fn escrow_open(&self, proof: &[u8]) -> Result<Vec<u8>, ClientError> {
        let r: EscrowOpenResp = self.post(
            "escrow/open",
            &EscrowOpenReq {
                proof: hex::encode(proof),
            },
        )?;
        unhex("blob", &r.blob)
    }

    pub fn escrow_delete(&self) -> Result<(), ClientError> {
        let _: Empty = self.post("escrow/delete", &Empty {})?;
        Ok(())
    }

    /// `web/on`: registers the account's store and the manifest this device trusts
    /// (signed by it) for the web front, with a new web password. Needs a recent session.
    pub fn web_on(&self, req: &WebOnReq) -> Result<WebStatus, ClientError> {
        self.post("web/on", req)
    }

    pub fn web_off(&self) -> Result<WebStatus, ClientError> {
        self.post("web/off", &Empty {})
    }

    pub fn web_status(&self) -> Result<WebStatus, ClientError> {
        self.post("web/status", &Empty {})
    }

    pub fn web_sessions(&self) -> Result<Vec<WebSessionInfo>, ClientError> {
        let r: WebSessionsResp = self.post("web/sessions", &Empty {})?;
        Ok(r.sessions)
    }

    /// `web/approvals`: the live ADP web sign-ins, with the key and MAC to check a code
    /// against.
    pub fn web_approvals(&self) -> Result<Vec<WebApproval>, ClientError> {
        let r: WebApprovalsResp = self.post("web/approvals", &Empty {})?;
        Ok(r.approvals)
    }

    /// `web/approve`: approves a web sign-in and releases the keys listed to it.
    pub fn web_approve(&self, req: &WebApproveReq) -> Result<WebApproveResp, ClientError> {
        self.post("web/approve", req)
    }

    /// Ends one web session (`Some(id)`) or all of them; how many ended.
    pub fn web_revoke(&self, id: Option<&str>) -> Result<u64, ClientError> {
        let r: WebRevokeResp = self.post(
            "web/revoke",
            &WebRevokeReq {
                id: id.map(str::to_string),
            },
        )?;
        Ok(r.ended)
    }
}
