//! The gc marks (`account/gc-marks`, FORMAT.md §14a): the packs `cirrus gc` found
//! unreferenced and kept, with when and in which gc epoch it first found each one, under
//! a header carrying the epoch counter. Here because both gc (which writes it) and every
//! syncing device (which reads the epoch at the start of a poll, for its acknowledgement)
//! need the layout.

use std::collections::BTreeMap;

/// The store object's name.
pub const GC_MARKS: &str = "account/gc-marks";

/// Bytes of the header line `gc-epoch <16 lowercase hex digits>\n`: a syncing device
/// reads only these (a ranged read), not the whole list.
pub const HEADER_LEN: u64 = 26;

const HEADER_TAG: &str = "gc-epoch ";

/// One kept pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Unix seconds (the gc device's clock) when first found unreferenced: only the
    /// grace period counts from it.
    pub since: u64,
    /// The gc epoch it was marked in; `None`: a layout-1 line (no epoch), which the next
    /// gc run re-marks in its own epoch.
    pub epoch: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The epoch of the gc run that wrote the object (0: none yet, or layout 1).
    pub epoch: u64,
    pub packs: BTreeMap<[u8; 32], Mark>,
}

/// The epoch in a header line (the first [`HEADER_LEN`] bytes, or more); `None` when the
/// bytes do not start with one (a layout-1 object, or a short read).
pub fn epoch_of(bytes: &[u8]) -> Option<u64> {
    let line = bytes.get(..HEADER_LEN as usize)?;
    let line = std::str::from_utf8(line).ok()?;
    let hex = line.strip_prefix(HEADER_TAG)?.strip_suffix('\n')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Reads either layout; a line that does not parse is skipped (the pack then counts as
/// found unreferenced just now: kept longer, never deleted earlier).
pub fn decode(bytes: &[u8]) -> Marks {
    let text = String::from_utf8_lossy(bytes);
    let mut marks = Marks {
        epoch: epoch_of(bytes).unwrap_or(0),
        ..Default::default()
    };
    for l in text.lines() {
        let mut f = l.split(' ');
        let (Some(id), Some(since)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(id) = hex::decode(id)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
        else {
            continue;
        };
        let Ok(since) = since.parse() else { continue };
        let epoch = match f.next() {
            None => None,
            Some(e) => match e.parse() {
                Ok(e) => Some(e),
                Err(_) => continue,
            },
        };
        if f.next().is_some() {
            continue;
        }
        marks.packs.insert(id, Mark { since, epoch });
    }
    marks
}

/// Layout 2: the header, then `<pack id hex> <since> <epoch>\n` ascending by id. A mark
/// without an epoch is written in `marks.epoch` (callers re-mark layout-1 lines first).
pub fn encode(marks: &Marks) -> Vec<u8> {
    let mut text = format!("{HEADER_TAG}{:016x}\n", marks.epoch);
    for (id, m) in &marks.packs {
        let e = m.epoch.unwrap_or(marks.epoch);
        text.push_str(&format!("{} {} {e}\n", hex::encode(id), m.since));
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_exact_bytes() {
        let mut m = Marks {
            epoch: 0x2a,
            ..Default::default()
        };
        m.packs.insert(
            [0xab; 32],
            Mark {
                since: 1_700_000_000,
                epoch: Some(3),
            },
        );
        let b = encode(&m);
        let want = format!(
            "gc-epoch 000000000000002a\n{} 1700000000 3\n",
            "ab".repeat(32)
        );
        assert_eq!(String::from_utf8(b.clone()).unwrap(), want);
        assert_eq!(decode(&b), m);
        assert_eq!(epoch_of(&b[..HEADER_LEN as usize]), Some(0x2a));
        assert_eq!(epoch_of(&b[..HEADER_LEN as usize - 1]), None, "short read");
    }

    #[test]
    fn layout_1_reads_as_epoch_0_with_unepoched_marks() {
        let old = format!("{} 1700000000\nnot a line\n", "cd".repeat(32));
        let m = decode(old.as_bytes());
        assert_eq!(m.epoch, 0);
        assert_eq!(epoch_of(old.as_bytes()), None);
        assert_eq!(
            m.packs.get(&[0xcd; 32]),
            Some(&Mark {
                since: 1_700_000_000,
                epoch: None
            })
        );
        assert_eq!(m.packs.len(), 1);
        assert_eq!(decode(b""), Marks::default());
    }
}
