//! Which old key versions the trusted devices still need: each device publishes a signed
//! acknowledgement (`format::ack`) of the oldest version it may still use per category,
//! and an old version is destroyed only once every other trusted device is past it, so a
//! device that was offline or had not synced yet is never left with data under a key
//! that is gone (FORMAT.md §14b).

use super::{AccountError, Unlocked};
use crate::format::ack::{ACK_SIGN_DOMAIN, Ack};
use crate::format::manifest::DeviceState;
use crate::format::names;
use crate::keys::device::{self, DevicePublic};
use crate::store::StoreError;
use crate::volume::Category;
use crate::volume::HeadWitness;
use log::{info, warn};
use std::collections::HashMap;

/// Witness entries for the newest acknowledgement read of each device (by its index in
/// the manifest); category ids stay below 2^30, remote head entries use 2^31.
const ACK_WITNESS: u32 = 1 << 30;
use std::sync::Arc;

/// What `cirrus gc` reads of the other active devices' acknowledgements.
#[derive(Debug, Clone, Default)]
pub struct GcAcks {
    /// The highest `gc_revived` of a genuine acknowledgement: marks up to this epoch
    /// may name packs a merge published again.
    pub revived: u64,
    /// Each device and the gc epoch it acknowledged: 0 when its acknowledgement is
    /// missing, does not verify, is a replay or has layout 1 (it then holds every marked
    /// pack, since marks start at epoch 1).
    pub epochs: Vec<(String, u64)>,
    /// Per category, the highest head counter a device says the store has, and which.
    pub heads: HashMap<u32, (u64, String)>,
}

fn highest_heads(acks: &[(String, Option<Ack>)]) -> HashMap<u32, (u64, String)> {
    let mut out: HashMap<u32, (u64, String)> = HashMap::new();
    for (name, ack) in acks {
        for (c, n) in ack.as_ref().map(|a| a.heads.clone()).unwrap_or_default() {
            if out.get(&c).is_none_or(|(m, _)| n > *m) {
                out.insert(c, (n, name.clone()));
            }
        }
    }
    out
}

impl Unlocked {
    /// Publishes this device's acknowledgement: `floors` is, per category open here, the
    /// oldest key version this device may still need; `heads` the highest head counter
    /// it knows the store has; `published` when it last had every head in the store (0:
    /// never); `gc_epoch`, `gc_revived` what it tells gc (FORMAT.md §14b). `gc_revived`
    /// never goes down, across mounts too: the previous acknowledgement's counts (a
    /// mount starts from 0).
    pub fn write_ack(
        &self,
        floors: &[(u32, u32)],
        heads: &[(u32, u64)],
        published: u64,
        gc_epoch: u64,
        gc_revived: u64,
    ) -> Result<(), AccountError> {
        let name = names::key_ack(&self.identity.public().sign);
        let before = match self.store.get(&name) {
            Ok(o) => Ack::decode(&o).map(|(a, _)| a.gc_revived).unwrap_or(0),
            Err(StoreError::NotFound(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        let mut floors = floors.to_vec();
        floors.sort_unstable();
        let mut heads = heads.to_vec();
        heads.sort_unstable();
        let ack = Ack {
            account_id: self.manifest.account_id,
            device: self.identity.public().sign,
            written: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            published,
            gc_epoch: Some(gc_epoch),
            gc_revived: gc_revived.max(before),
            floors,
            heads,
        };
        let sig = self.identity.sign(ACK_SIGN_DOMAIN, &ack.body());
        self.store.put(&name, &ack.encode(&sig))?;
        Ok(())
    }

    /// The other trusted devices that may still need key `version` of `category`: those
    /// whose acknowledgement says so, is missing, or does not verify.
    pub fn devices_needing(
        &self,
        category: u32,
        version: u32,
    ) -> Result<Vec<String>, AccountError> {
        Ok(self
            .acks()?
            .into_iter()
            .filter(|(_, a)| a.as_ref().is_none_or(|a| a.needs(category, version)))
            .map(|(n, _)| n)
            .collect())
    }

    /// The other trusted devices' acknowledgements as `cirrus gc` needs them, all read
    /// (and verified) in one pass before gc reads any head: an acknowledgement that
    /// counts then comes from a poll whose publications the heads read afterwards hold.
    pub fn gc_acks(&self) -> Result<GcAcks, AccountError> {
        let acks = self.acks()?;
        // A removed device's last acknowledgement still counts for revivals: a pack it
        // brought back before its removal may be named by heads the others took in.
        let removed = self.device_acks(|d| d.state != DeviceState::Active)?;
        Ok(GcAcks {
            heads: highest_heads(&acks),
            revived: acks
                .iter()
                .chain(&removed)
                .filter_map(|(_, a)| a.as_ref().map(|a| a.gc_revived))
                .max()
                .unwrap_or(0),
            epochs: acks
                .into_iter()
                .map(|(n, a)| (n, a.and_then(|a| a.gc_epoch).unwrap_or(0)))
                .collect(),
        })
    }

    /// Per category, the highest head counter another trusted device says the store has,
    /// and that device's name.
    pub fn acked_heads(&self) -> Result<HashMap<u32, (u64, String)>, AccountError> {
        Ok(highest_heads(&self.acks()?))
    }

    /// Every other active device, with its acknowledgement if there is a genuine one.
    fn acks(&self) -> Result<Vec<(String, Option<Ack>)>, AccountError> {
        self.device_acks(|d| d.state == DeviceState::Active)
    }

    /// The other devices that `which` picks, each with its acknowledgement if there is a
    /// genuine one (signed by that device, for this account, not older than one read here).
    fn device_acks(
        &self,
        which: impl Fn(&crate::format::manifest::DeviceEntry) -> bool,
    ) -> Result<Vec<(String, Option<Ack>)>, AccountError> {
        let me = self.identity.public().sign;
        let mut out = Vec::new();
        for (slot, d) in self.manifest.devices.iter().enumerate() {
            if d.sign == me || !which(d) {
                continue;
            }
            let obj = match self.store.get(&names::key_ack(&d.sign)) {
                Ok(o) => o,
                Err(StoreError::NotFound(_)) => {
                    out.push((d.name.clone(), None));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let genuine = Ack::decode(&obj).ok().filter(|(a, sig)| {
                a.device == d.sign
                    && a.account_id == self.manifest.account_id
                    && device::verify(
                        &DevicePublic {
                            sign: d.sign,
                            kx: [0; 32],
                        },
                        ACK_SIGN_DOMAIN,
                        &a.body(),
                        sig,
                    )
                    .is_ok()
            });
            if genuine.is_none() {
                warn!(
                    "the acknowledgement of device {} does not verify; it counts as still \
                     needing every old key and pack",
                    d.name
                );
            }
            // An acknowledgement older than one already read here is a replay (its floors
            // could be from before the device had some data): it counts as none.
            let witness = ACK_WITNESS | slot as u32;
            let genuine = genuine.map(|(a, _)| a).filter(|a| {
                // Unreadable record: treat the acknowledgement as a replay (fail closed).
                let Ok(seen) = self.seen.seen(witness).map(|s| s.map_or(0, |(w, _)| w)) else {
                    warn!(
                        "cannot check the acknowledgement of device {} against the record \
                         of heads seen; it counts as still needing every old key and pack",
                        d.name
                    );
                    return false;
                };
                if a.written < seen {
                    warn!(
                        "the store serves an older acknowledgement of device {} than it did \
                         before; it counts as still needing every old key and pack",
                        d.name
                    );
                    return false;
                }
                if let Err(e) = self.seen.record(witness, a.written, [0; 32]) {
                    warn!(
                        "cannot record the acknowledgement of device {}: {e}",
                        d.name
                    );
                }
                true
            });
            out.push((d.name.clone(), genuine));
        }
        Ok(out)
    }

    /// Destroys the old key versions that no device needs any more: key objects below
    /// a category's current version, once this device (`own_floors`) and every other
    /// trusted device are past them. Returns "category vN" for each one destroyed.
    pub fn destroy_released_keys(
        &mut self,
        own_floors: &[(u32, u32)],
        cats: &[Arc<Category>],
    ) -> Result<Vec<String>, AccountError> {
        let objects = self.store.list("keys/")?;
        let mut done = Vec::new();
        for e in self.table().active().cloned().collect::<Vec<_>>() {
            for v in 1..e.key_version {
                if !objects.contains(&names::category_key(e.id, v)) {
                    continue;
                }
                let mine = own_floors
                    .iter()
                    .any(|(c, floor)| *c == e.id && *floor <= v);
                if mine || !self.devices_needing(e.id, v)?.is_empty() {
                    continue;
                }
                self.destroy_key_version(e.id, v)?;
                if let Some(c) = cats.iter().find(|c| c.id == e.id) {
                    c.drop_old_key_version(v);
                }
                info!(
                    "category {}: key version {v} destroyed (every trusted device is past it)",
                    e.name
                );
                done.push(format!("{} v{v}", e.name));
            }
        }
        Ok(done)
    }
}
