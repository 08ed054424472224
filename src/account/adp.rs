//! Advanced Data Protection: moving the categories iCloud moves (Backup, Drive, Notes,
//! Photos, ...) from `standard` to `e2e`, so the key service no longer holds their keys,
//! and back. Turning it on needs a recovery method and every trusted device able to
//! follow; the flag lives in the signed manifest so no server can flip it.

use super::*;
use crate::format::manifest::{FEATURE_ADP, FLAG_ADP};

/// The categories ADP moves to e2e (after the public iCloud description). Mail,
/// Contacts and Calendars stay as they are.
pub const ADP_CATEGORIES: &[&str] = &[
    "Backup",
    "Drive",
    "Notes",
    "Photos",
    "Reminders",
    "Bookmarks",
    "Shortcuts",
    "Voice Memos",
    "Passes",
];

/// Why ADP cannot be turned on for this manifest (empty: it can).
pub fn adp_blockers(m: &Manifest) -> Vec<String> {
    let mut why = Vec::new();
    if m.recovery.is_empty() {
        why.push(format!(
            "set up a recovery method first (`{}`): with ADP on, nobody else can recover \
             your data",
            crate::hint::cmd_hint("recovery-key create")
        ));
    }
    for d in m.active_devices() {
        if d.features & FEATURE_ADP == 0 {
            why.push(format!(
                "device {} does not support Advanced Data Protection (update it or remove it)",
                d.name
            ));
        }
    }
    why
}

/// Why a rotation may not move category `e` to class `want` (None: it may). A class
/// change is what `adp on` asks for and nothing else: an ADP category, with the signed
/// ADP flag already on, from `standard` to `e2e` (same suite, so the open category keeps
/// reading). Anything else (Mail or Contacts to e2e, a transit category, ADP off) would
/// strand data without a recovery method or under a suite the category cannot open, and
/// is refused whoever asks (the CLI or a request on the daemon's control socket).
pub fn class_change_refusal(m: &Manifest, e: &CategoryEntry, want: Class) -> Option<String> {
    if want == e.class {
        return None;
    }
    if want != Class::E2e {
        return Some("a rotation can only move a category to e2e".into());
    }
    if !ADP_CATEGORIES.contains(&e.name.as_str()) {
        return Some(format!(
            "category {} is not one that Advanced Data Protection moves; its class cannot \
             change",
            e.name
        ));
    }
    if e.class != Class::Standard {
        return Some(format!(
            "category {} is {}, not standard; only a standard category moves to e2e",
            e.name,
            e.class.name()
        ));
    }
    if !m.has(FLAG_ADP) {
        return Some(format!(
            "Advanced Data Protection is off; `{}` moves {} to e2e",
            crate::hint::cmd_hint("adp on"),
            e.name
        ));
    }
    None
}

impl Unlocked {
    pub fn adp_on(&self) -> bool {
        self.manifest.has(FLAG_ADP)
    }

    /// Turns the ADP flag on (signed) and returns the categories to move to e2e, each
    /// with a new key so the key service's copies of the old keys open nothing new. Safe
    /// to call again to resume.
    pub fn begin_adp(&mut self) -> Result<Vec<String>, AccountError> {
        let why = adp_blockers(&self.manifest);
        if !why.is_empty() {
            return Err(AccountError::BadCode(format!(
                "cannot turn on Advanced Data Protection: {}",
                why.join("; ")
            )));
        }
        if !self.manifest.has(FLAG_ADP) {
            let mut next = self.manifest.clone();
            next.set(FLAG_ADP, true);
            self.publish_manifest(next)?;
        }
        // ADP turns web access off (the web front also refuses any account whose
        // manifest says ADP, whoever asks): this ends the open web sessions now.
        if let Ok(s) = self.session() {
            match s.web_off() {
                Ok(_) => log::info!("web access is off: Advanced Data Protection is on"),
                Err(e) => log::debug!("turning web access off: {e}"),
            }
        }
        Ok(self.adp_targets())
    }

    fn adp_targets(&self) -> Vec<String> {
        self.manifest
            .table
            .active()
            .filter(|e| ADP_CATEGORIES.contains(&e.name.as_str()))
            .map(|e| e.name.clone())
            .collect()
    }

    /// Turns ADP off: the current keys of the ADP categories are wrapped by the key
    /// service again and the categories become `standard`. No data is re-encrypted.
    pub fn adp_off(&mut self) -> Result<Vec<String>, AccountError> {
        let mut next = self.manifest.clone();
        let mut moved = Vec::new();
        for e in self.manifest.table.active() {
            if !ADP_CATEGORIES.contains(&e.name.as_str()) || e.class != Class::E2e {
                continue;
            }
            let key = self.category_key(e)?;
            self.store_category_key(e.id, e.key_version, Class::Standard, &key)?;
            for x in &mut next.table.entries {
                if x.id == e.id {
                    x.class = Class::Standard;
                }
            }
            moved.push(e.name.clone());
        }
        next.set(FLAG_ADP, false);
        self.publish_manifest(next)?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::RecoveryEntry;

    #[test]
    fn only_adp_on_moves_a_standard_adp_category_to_e2e() {
        let entry = |name: &str, class| CategoryEntry {
            id: 1,
            name: name.into(),
            class,
            retired: false,
            key_version: 1,
        };
        let mut m = Manifest::empty([0; 16]);
        let refused =
            |m: &Manifest, name, class, want| class_change_refusal(m, &entry(name, class), want);
        // ADP off: nothing moves, not even an ADP category.
        assert!(refused(&m, "Notes", Class::Standard, Class::E2e).is_some());
        m.set(FLAG_ADP, true);
        assert_eq!(refused(&m, "Notes", Class::Standard, Class::E2e), None);
        assert_eq!(
            refused(&m, "Notes", Class::E2e, Class::E2e),
            None,
            "no change"
        );
        // Never outside ADP's list, never from transit (another suite), never away from e2e.
        assert!(refused(&m, "Mail", Class::Transit, Class::E2e).is_some());
        assert!(refused(&m, "Contacts", Class::Standard, Class::E2e).is_some());
        assert!(refused(&m, "Notes", Class::Transit, Class::E2e).is_some());
        assert!(refused(&m, "Notes", Class::E2e, Class::Standard).is_some());
    }

    #[test]
    fn adp_needs_a_recovery_method_and_every_device_able_to_follow() {
        let dev = |name: &str, features| DeviceEntry {
            name: name.into(),
            sign: [name.len() as u8; 32],
            kx: [0; 32],
            state: DeviceState::Active,
            features,
        };
        let mut m = Manifest {
            counter: 1,
            account_key_version: 1,
            devices: vec![dev("laptop", FEATURES), dev("old phone", 0)],
            ..Manifest::empty([0; 16])
        };
        let why = adp_blockers(&m);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].contains("recovery method") && why[1].contains("old phone"));
        m.recovery
            .push(RecoveryEntry::placeholder("recovery key", 8, 1));
        m.devices[1].state = DeviceState::Removed;
        assert!(adp_blockers(&m).is_empty());
    }
}
