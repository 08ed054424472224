//! Account endpoints: creation, salt, login (password, TOTP, device tokens), logout,
//! status and flags, password change, data-recovery reset, TOTP enrolment.

use super::*;

impl KeyService {
    pub(crate) fn create(&self, c: &Caller, req: CreateReq) -> Result<SessionResp, ApiError> {
        check_account_name(&req.account)?;
        let (salt, auth) = password_fields("", &req.salt, req.kdf, &req.auth)?;
        // Every attempt counts against the source address, before any Argon2 work: a
        // flood of sign-ups can neither fill the disk nor take the KDF pool.
        let now = Instant::now();
        let ip = Source::key(c.ip);
        if let Err(retry_after) = self.signup_limit.check(&ip, now) {
            return Err(ApiError::RateLimited { retry_after });
        }
        self.signup_limit.fail(&ip, now);
        if self.cfg.signup == Signup::Closed {
            self.read(|tx| self.check_invite(tx, &req.account, req.invite.as_deref()))?;
        }
        let verifier = self.make_verifier(&auth[..])?;
        self.locked(&req.account, |tx| {
            if tx.account(&req.account)?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "an account named {} already exists",
                    req.account
                )));
            }
            if self.cfg.signup == Signup::Closed {
                // Checked again under the lock and used up: one invitation, one account.
                self.check_invite(tx, &req.account, req.invite.as_deref())?;
                tx.delete_invite(&req.account)?;
            }
            let key = crypto::random_key()?;
            let sealed = self
                .master
                .seal(&req.account, "service-key/1", key.expose())?;
            let a = Account {
                format: ACCOUNT_FORMAT,
                name: req.account.clone(),
                salt: hex::encode(&salt[..]),
                kdf: req.kdf,
                verifier,
                drs: true,
                totp: None,
                device_tokens: Vec::new(),
                service: ServiceKeys {
                    current: 1,
                    keys: BTreeMap::from([(1, sealed)]),
                },
                escrow_destroyed: false,
                reset_guard: Default::default(),
                pending_reset: None,
                notices: Vec::new(),
            };
            tx.put_account(&a)?;
            log::info!("created account {}", req.account);
            // It has just set the password and has no second factor yet.
            self.open_session(tx, &req.account, Recency::Recent, None)
        })
    }

    /// A closed service's check of an invitation for `account`.
    fn check_invite(
        &self,
        tx: &mut Tx<'_>,
        account: &str,
        code: Option<&str>,
    ) -> Result<(), ApiError> {
        let code = code.ok_or(ApiError::SignupClosed)?;
        let inv = tx.invite(account)?.ok_or(ApiError::SignupClosed)?;
        let stored = hex::decode(&inv.hash).unwrap_or_default();
        if !crypto::ct_eq(&stored, &token_hash(code.trim())) || now_secs() >= inv.expires_at {
            return Err(ApiError::SignupClosed);
        }
        Ok(())
    }

    /// `cirrus serve account create`: an invitation for `account`, valid for `valid`;
    /// returns the code to hand to its owner. Replaces an earlier one.
    pub(crate) fn invite(
        &self,
        account: &str,
        valid: Duration,
    ) -> Result<Zeroizing<String>, ApiError> {
        check_account_name(account)?;
        self.locked(account, |tx| {
            if tx.account(account)?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "an account named {account} already exists"
                )));
            }
            let code = new_token()?;
            tx.put_invite(
                account,
                &crate::keyservice::server::state::Invite {
                    hash: hex::encode(token_hash(&code)),
                    expires_at: now_secs().saturating_add(valid.as_secs()),
                },
            )?;
            log::info!("invitation made for account {account}");
            Ok(code)
        })
    }

    /// The public salt and KDF cost of an account. For a name with no account, a made-up
    /// salt that is stable per name, so this endpoint does not tell who has an account.
    pub(crate) fn salt(&self, req: SaltReq) -> Result<SaltResp, ApiError> {
        check_account_name(&req.account)?;
        if let Some(a) = self.read(|tx| Ok(tx.account(&req.account)?))? {
            return Ok(SaltResp {
                salt: a.salt,
                kdf: a.kdf,
            });
        }
        let fake = self.master.fake_salt_key();
        let h = blake3::keyed_hash(fake.expose(), req.account.as_bytes());
        Ok(SaltResp {
            salt: hex::encode(&h.as_bytes()[..16]),
            kdf: KdfParams::default(),
        })
    }

    pub(crate) fn login(&self, c: &Caller, req: LoginReq) -> Result<SessionResp, ApiError> {
        check_account_name(&req.account)?;
        let auth = unhex_exact::<32>("auth", &req.auth)?;
        let account_key = format!("login:{}", req.account);
        self.locked(&req.account, |tx| {
            let Some(mut a) = tx.account(&req.account)? else {
                self.limit_check(tx, &account_key, c.ip)?;
                let _ = self.verify(&self.dummy_verifier, &auth[..]);
                self.limit_fail(tx, &account_key, c.ip)?;
                return Err(wrong_login());
            };
            // An attempt that presents one of the account's remembered-device tokens is
            // counted against that token only: a stranger's failures (on the account's
            // or the address's counter) never lock the owner's devices out.
            let by_device = req
                .device_token
                .as_deref()
                .is_some_and(|t| remembers(&a, t));
            let token_key = req
                .device_token
                .as_deref()
                .filter(|_| by_device)
                .map(|t| format!("token:{}", hex::encode(token_hash(t))));
            let key = token_key.as_deref().unwrap_or(&account_key);
            // Checked under the account lock, so parallel guesses cannot all pass the
            // check before the first failure is counted.
            match &token_key {
                Some(k) => self.limit_check_key(tx, k)?,
                None => self.limit_check(tx, key, c.ip)?,
            }
            let fail = |tx: &mut Tx<'_>, k: &str| match &token_key {
                Some(_) => self.limit_fail_key(tx, k),
                None => self.limit_fail(tx, k, c.ip),
            };
            if !self.verify(&a.verifier, &auth[..]) {
                fail(tx, key)?;
                log::info!("failed login for {} from {}", a.name, c.ip);
                return Err(wrong_login());
            }
            let mut changed = false;
            // Remembering a device needs a fresh second factor, not a remembered one.
            let mut may_remember = true;
            if Self::totp_enrolled(&a) {
                if by_device {
                    may_remember = false;
                } else {
                    match req.totp.as_deref() {
                        Some(code) => {
                            self.check_totp(tx, &mut a, code, key, c.ip)?;
                            changed = true;
                        }
                        None if req.device_token.is_some() => {
                            fail(tx, key)?;
                            return Err(ApiError::SecondFactor(
                                "this device is not remembered (its token was revoked or is \
                                 wrong): a TOTP code is needed"
                                    .into(),
                            ));
                        }
                        None => {
                            return Err(ApiError::SecondFactor(
                                "this account needs a TOTP code (or a remembered device) to log in"
                                    .into(),
                            ));
                        }
                    }
                }
            }
            let mut device_token = None;
            if req.remember_device && may_remember {
                // The device's earlier token (named with the code, or presented as the
                // second factor of an account without TOTP) makes way for the new one:
                // each device holds one entry, and no device's logins evict another's.
                // Naming a token needs its value, so nobody can drop another device's.
                let old = req
                    .replaces_token
                    .as_deref()
                    .or(req.device_token.as_deref().filter(|_| by_device));
                if let Some(old) = old {
                    let h = hex::encode(token_hash(old));
                    a.device_tokens.retain(|x| *x != h);
                }
                let t = new_token()?;
                a.device_tokens.push(hex::encode(token_hash(&t)));
                if a.device_tokens.len() > MAX_DEVICE_TOKENS {
                    a.device_tokens.remove(0);
                }
                device_token = Some(t.to_string());
                changed = true;
            }
            if changed {
                tx.put_account(&a)?;
            }
            self.limit_success(tx, key)?;
            log::info!("login for {} from {}", a.name, c.ip);
            // Recent unless a remembered device stood in for the TOTP code: a copied
            // device token must not be enough to change credentials.
            let recency = if may_remember {
                Recency::Recent
            } else {
                Recency::Stale
            };
            self.open_session(tx, &a.name, recency, device_token)
        })
    }

    pub(crate) fn logout(&self, c: &Caller) -> Result<Empty, ApiError> {
        self.session(c)?;
        if let Some(t) = &c.bearer {
            self.unlocked(|tx| Ok(self.sessions.close(tx, t)?))?;
        }
        Ok(Empty {})
    }

    fn status_of(tx: &mut Tx<'_>, a: &Account) -> Result<AccountStatus, ApiError> {
        Ok(AccountStatus {
            totp_enrolled: Self::totp_enrolled(a),
            drs: a.drs,
            escrow: tx.escrow(&a.name)?.is_some() && !a.escrow_destroyed,
            escrow_destroyed: a.escrow_destroyed,
            service_version: a.service.current,
        })
    }

    pub(crate) fn account_status(&self, c: &Caller) -> Result<AccountStatus, ApiError> {
        let name = self.session(c)?;
        self.locked_session(c, &name, Recency::Stale, |tx| {
            let a = Self::load(tx, &name)?;
            Self::status_of(tx, &a)
        })
    }

    pub(crate) fn account_flags(
        &self,
        c: &Caller,
        req: FlagsReq,
    ) -> Result<AccountStatus, ApiError> {
        let name = self.recent_session(c)?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            a.drs = req.drs;
            tx.put_account(&a)?;
            log::info!(
                "account {name}: data recovery service {}",
                if req.drs { "on" } else { "off" }
            );
            Self::status_of(tx, &a)
        })
    }

    pub(crate) fn password_change(
        &self,
        c: &Caller,
        req: PasswordChangeReq,
    ) -> Result<PasswordChangeResp, ApiError> {
        let name = self.recent_session(c)?;
        let (salt, auth) = password_fields("new_", &req.new_salt, req.new_kdf, &req.new_auth)?;
        let verifier = self.make_verifier(&auth[..])?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            a.salt = hex::encode(&salt[..]);
            a.kdf = req.new_kdf;
            a.verifier = verifier;
            // Whoever holds another session or a remembered device may be why the
            // password changes: they all end, the caller's session excepted.
            a.device_tokens.clear();
            let mut device_token = None;
            if req.remember_device {
                let t = new_token()?;
                a.device_tokens.push(hex::encode(token_hash(&t)));
                device_token = Some(t.to_string());
            }
            tx.put_account(&a)?;
            if let Some(t) = &c.bearer {
                self.sessions.close_others(tx, &name, t)?;
            }
            // Web sessions too (and the keys released to them).
            self.end_web_sessions(tx, &name)?;
            failpoint::reach(failpoint::PASSWORD_CHANGE);
            log::info!("account {name}: password changed; other sessions and devices ended");
            Ok(PasswordChangeResp { device_token })
        })
    }

    pub(crate) fn totp_enroll(&self, c: &Caller) -> Result<TotpEnrollResp, ApiError> {
        let name = self.recent_session(c)?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            if Self::totp_enrolled(&a) {
                return Err(ApiError::Conflict(
                    "TOTP is already enrolled for this account".into(),
                ));
            }
            let (f, uri) = TotpFactor::enroll(&name, self.cfg.totp_period)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            a.totp = Some(TotpState {
                secret: self.master.seal(&name, "totp-secret", f.secret())?,
                confirmed: false,
                last_step: None,
            });
            tx.put_account(&a)?;
            Ok(TotpEnrollResp { uri })
        })
    }

    pub(crate) fn totp_confirm(
        &self,
        c: &Caller,
        req: TotpConfirmReq,
    ) -> Result<TotpConfirmResp, ApiError> {
        let name = self.recent_session(c)?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            match &a.totp {
                None => return Err(bad("no TOTP enrolment is pending: call totp/enroll first")),
                Some(t) if t.confirmed => {
                    return Err(ApiError::Conflict(
                        "TOTP is already enrolled for this account".into(),
                    ));
                }
                Some(_) => {}
            }
            let mut f = self
                .totp_factor(&a)?
                .ok_or_else(|| ApiError::Internal("TOTP state vanished".into()))?;
            f.verify(&req.code, now_secs())
                .map_err(|e| bad(format!("the confirmation code was refused: {e}")))?;
            if let Some(t) = &mut a.totp {
                t.confirmed = true;
                t.last_step = f.last_step();
            }
            // Tokens remembered before there was a second factor were never proven by
            // one: they must not stand in for it now.
            a.device_tokens.clear();
            let mut device_token = None;
            if req.remember_device {
                let t = new_token()?;
                a.device_tokens.push(hex::encode(token_hash(&t)));
                device_token = Some(t.to_string());
            }
            tx.put_account(&a)?;
            log::info!("account {name}: TOTP enrolled");
            Ok(TotpConfirmResp { device_token })
        })
    }

    pub(crate) fn revoke_devices(&self, c: &Caller) -> Result<RevokedResp, ApiError> {
        let name = self.recent_session(c)?;
        self.locked_session(c, &name, Recency::Recent, |tx| {
            let mut a = Self::load(tx, &name)?;
            let revoked = a.device_tokens.len() as u32;
            a.device_tokens.clear();
            tx.put_account(&a)?;
            log::info!("account {name}: {revoked} device tokens revoked");
            Ok(RevokedResp { revoked })
        })
    }
}
