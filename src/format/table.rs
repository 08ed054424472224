//! The category table: which top-level folders exist and their protection class. An
//! authenticated account object, versioned by a counter so it cannot be rolled back.

use super::codec::{FormatError, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transit = 1,
    Standard = 2,
    E2e = 3,
}

impl Class {
    pub fn from_u8(v: u8) -> Result<Self, FormatError> {
        match v {
            1 => Ok(Class::Transit),
            2 => Ok(Class::Standard),
            3 => Ok(Class::E2e),
            _ => Err(FormatError::Unknown {
                what: "protection class",
                value: v as u64,
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Class::Transit => "transit",
            Class::Standard => "standard",
            Class::E2e => "e2e",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transit" => Some(Class::Transit),
            "standard" => Some(Class::Standard),
            "e2e" => Some(Class::E2e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryEntry {
    pub id: u32,
    pub name: String,
    pub class: Class,
    pub retired: bool,
    /// Current version of the category key (`keys/<id>/<version>` in the store).
    pub key_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryTable {
    pub counter: u64,
    pub next_id: u32,
    pub entries: Vec<CategoryEntry>,
}

impl CategoryTable {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(super::FORMAT_VERSION)
            .u64(self.counter)
            .u32(self.next_id)
            .u32(self.entries.len() as u32);
        for e in &self.entries {
            w.u32(e.id)
                .u32(e.key_version)
                .u8(e.class as u8)
                .u8(e.retired as u8)
                .bytes(e.name.as_bytes());
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let counter = r.u64()?;
        let next_id = r.u32()?;
        let n = r.count(14)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.u32()?;
            let key_version = r.u32()?;
            let class = Class::from_u8(r.u8()?)?;
            let retired = r.u8()? != 0;
            let name = String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| FormatError::Invalid("category name is not UTF-8"))?;
            entries.push(CategoryEntry {
                id,
                name,
                class,
                retired,
                key_version,
            });
        }
        r.end()?;
        Ok(CategoryTable {
            counter,
            next_id,
            entries,
        })
    }

    pub fn active(&self) -> impl Iterator<Item = &CategoryEntry> {
        self.entries.iter().filter(|e| !e.retired)
    }

    pub fn find(&self, name: &str) -> Option<&CategoryEntry> {
        self.active().find(|e| e.name == name)
    }
}

/// The default table, after the public iCloud security overview (names generic).
pub const DEFAULT_CATEGORIES: &[(&str, Class)] = &[
    ("Backup", Class::Standard),
    ("Calendars", Class::Standard),
    ("Contacts", Class::Standard),
    ("Drive", Class::Standard),
    ("Notes", Class::Standard),
    ("Photos", Class::Standard),
    ("Reminders", Class::Standard),
    ("Bookmarks", Class::Standard),
    ("Shortcuts", Class::Standard),
    ("Voice Memos", Class::Standard),
    ("Passes", Class::Standard),
    ("Mail", Class::Transit),
    ("Card Transactions", Class::E2e),
    ("Health", Class::E2e),
    ("Home", Class::E2e),
    ("Keychain", Class::E2e),
    ("Maps", Class::E2e),
    ("Avatars", Class::E2e),
    ("Messages", Class::E2e),
    ("Payment Information", Class::E2e),
    ("Keyboard Vocabulary", Class::E2e),
    ("Browser History", Class::E2e),
    ("Screen Time", Class::E2e),
    ("Assistant", Class::E2e),
    ("Wi-Fi Passwords", Class::E2e),
    ("Bluetooth Keys", Class::E2e),
];
