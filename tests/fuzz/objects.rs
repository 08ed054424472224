//! Random valid objects of every kind a decoder reads, and their encodings.

use cirrus::account::local::Keyring;
use cirrus::crypto::{self, SecretKey, Suite};
use cirrus::export::{OpeningReader, SealingWriter};
use cirrus::format::ack::Ack;
use cirrus::format::codec::Writer;
use cirrus::format::export::{self as xformat, ExportHeader};
use cirrus::format::head::Head;
use cirrus::format::manifest::{
    Approval, DeviceEntry, DeviceState, JoinRequest, Manifest, RecoveryEntry, RecoveryKind,
    SignedManifest,
};
use cirrus::format::names;
use cirrus::format::pack::BlobRef;
use cirrus::format::record::{
    Attr, ChunkRef, DirEntry, PatchRef, Payload, Record, Time, encode_leaf,
};
use cirrus::format::recovery_proof::RecoveryProof;
use cirrus::format::table::{CategoryEntry, CategoryTable, Class};
use cirrus::store::writeback::{decode_journal_header, encode_journal_header};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

/// A whole chunk, or a base with a patch of a non-empty sector mask (slot 03).
pub fn chunk_ref() -> impl Strategy<Value = ChunkRef> {
    (blob_ref(), proptest::option::of((blob_ref(), 1..=u64::MAX))).prop_map(|(base, patch)| {
        ChunkRef {
            base,
            patch: patch.map(|(blob, sectors)| PatchRef { blob, sectors }),
        }
    })
}

pub fn blob_ref() -> impl Strategy<Value = BlobRef> {
    (hash(), any::<u32>(), any::<u32>(), hash()).prop_map(|(pack, offset, len, tag)| BlobRef {
        pack,
        offset,
        len,
        tag,
    })
}

pub fn head() -> impl Strategy<Value = Head> {
    (
        (
            any::<u32>(),
            any::<u64>(),
            hash(),
            any::<u32>(),
            any::<u64>(),
        ),
        proptest::collection::vec((any::<u64>(), blob_ref()), 0..6),
        (any::<u64>(), any::<u64>(), any::<u32>(), any::<u64>()),
        proptest::collection::vec((any::<u32>(), any::<u64>()), 0..5),
        // Half the heads carry no web change (layout 3), half one (layout 4).
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(
                (category, counter, prev, key_version, next_ino),
                leaves,
                (bytes, inodes, rotating_from, rotate_cursor),
                alloc,
                web_seq,
            )| Head {
                category,
                counter,
                prev,
                key_version,
                next_ino,
                leaves,
                bytes,
                inodes,
                rotating_from,
                rotate_cursor,
                alloc,
                web_seq,
            },
        )
}

pub fn time() -> impl Strategy<Value = Time> {
    (any::<i64>(), 0..1_000_000_000u32).prop_map(|(sec, nsec)| Time { sec, nsec })
}

pub fn short_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

pub fn dir_name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("no slash", |b| *b != b'/'), 1..24)
}

pub fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            any::<u64>(),
            proptest::collection::btree_map(
                dir_name(),
                (any::<u64>(), any::<u8>()).prop_map(|(ino, kind)| DirEntry { ino, kind }),
                0..6
            )
        )
            .prop_map(|(parent, entries)| Payload::Dir { parent, entries }),
        (
            any::<u64>(),
            proptest::collection::vec(proptest::option::of(chunk_ref()), 0..6)
        )
            .prop_map(|(size, chunks)| Payload::File { size, chunks }),
        short_bytes(64).prop_map(Payload::Symlink),
        Just(Payload::Special),
    ]
}

pub fn record() -> impl Strategy<Value = Record> {
    (
        (any::<[u32; 4]>(), any::<u64>()),
        [time(), time(), time(), time()],
        proptest::collection::btree_map(short_bytes(16), short_bytes(32), 0..4),
        payload(),
    )
        .prop_map(
            |(([mode, uid, gid, nlink], rdev), [atime, mtime, ctime, btime], xattrs, payload)| {
                Record {
                    attr: Attr {
                        mode,
                        uid,
                        gid,
                        nlink,
                        rdev,
                        atime,
                        mtime,
                        ctime,
                        btime,
                    },
                    xattrs,
                    payload,
                }
            },
        )
}

pub fn leaf() -> impl Strategy<Value = BTreeMap<u64, Record>> {
    proptest::collection::btree_map(any::<u64>(), record(), 0..5)
}

pub fn leaf_bytes(l: &BTreeMap<u64, Record>) -> Vec<u8> {
    encode_leaf(&l.iter().map(|(k, v)| (*k, v)).collect())
}

pub fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect())
}

pub fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Transit),
        Just(Class::Standard),
        Just(Class::E2e)
    ]
}

pub fn table() -> impl Strategy<Value = CategoryTable> {
    (
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(
            (any::<u32>(), text(12), class(), any::<bool>(), any::<u32>()).prop_map(
                |(id, name, class, retired, key_version)| CategoryEntry {
                    id,
                    name,
                    class,
                    retired,
                    key_version,
                },
            ),
            0..5,
        ),
    )
        .prop_map(|(counter, next_id, entries)| CategoryTable {
            counter,
            next_id,
            entries,
        })
}

pub fn device() -> impl Strategy<Value = DeviceEntry> {
    (text(12), hash(), hash(), any::<bool>(), any::<u32>()).prop_map(
        |(name, sign, kx, active, features)| DeviceEntry {
            name,
            sign,
            kx,
            state: if active {
                DeviceState::Active
            } else {
                DeviceState::Removed
            },
            features,
        },
    )
}

pub fn recovery() -> impl Strategy<Value = RecoveryEntry> {
    (
        prop_oneof![
            Just(RecoveryKind::RecoveryKey),
            Just(RecoveryKind::Contact),
            Just(RecoveryKind::Escrow)
        ],
        text(12),
        any::<[u8; 16]>(),
        any::<u32>(),
        any::<u32>(),
        hash(),
        hash(),
    )
        .prop_map(
            |(kind, label, salt, kdf_memory_kib, kdf_time, sign, kx)| RecoveryEntry {
                kind,
                label,
                salt,
                kdf_memory_kib,
                kdf_time,
                sign,
                kx,
            },
        )
}

pub fn manifest() -> impl Strategy<Value = Manifest> {
    (
        (any::<[u8; 16]>(), any::<u64>(), any::<u32>(), any::<u8>()),
        proptest::collection::vec(device(), 0..4),
        proptest::collection::vec(recovery(), 0..3),
        proptest::collection::vec((any::<u32>(), any::<u32>(), hash()), 0..4),
        table(),
    )
        .prop_map(
            |((account_id, counter, account_key_version, flags), devices, recovery, kc, table)| {
                Manifest {
                    account_id,
                    counter,
                    account_key_version,
                    flags,
                    devices,
                    recovery,
                    key_commitments: kc,
                    table,
                }
            },
        )
}

pub fn signed_manifest() -> impl Strategy<Value = SignedManifest> {
    (manifest(), hash(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(m, signer, a, b)| {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&a);
        sig[32..].copy_from_slice(&b);
        SignedManifest {
            body: m.encode(),
            signer,
            sig,
        }
    })
}

pub fn sig64() -> impl Strategy<Value = [u8; 64]> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        s
    })
}

pub fn join_request() -> impl Strategy<Value = JoinRequest> {
    (text(16), hash(), hash(), any::<u32>(), hash(), sig64()).prop_map(
        |(name, sign, kx, features, tag, sig)| JoinRequest {
            name,
            sign,
            kx,
            features,
            tag,
            sig,
        },
    )
}

pub fn approval() -> impl Strategy<Value = Approval> {
    (any::<u64>(), hash(), hash()).prop_map(|(counter, approver, mac)| Approval {
        counter,
        approver,
        mac,
    })
}

pub fn ack() -> impl Strategy<Value = Ack> {
    (
        any::<[u8; 16]>(),
        hash(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((any::<u64>(), any::<u64>())),
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..5),
        proptest::collection::vec((any::<u32>(), any::<u64>()), 0..5),
    )
        .prop_map(
            |(account_id, device, written, published, gc, floors, heads)| Ack {
                account_id,
                device,
                written,
                published,
                gc_epoch: gc.map(|(e, _)| e),
                gc_revived: gc.map_or(0, |(_, r)| r),
                floors,
                heads,
            },
        )
}

pub fn recovery_proof() -> impl Strategy<Value = RecoveryProof> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec((any::<u32>(), any::<u32>(), hash()), 0..5),
    )
        .prop_map(|(counter, at, tags)| RecoveryProof { counter, at, tags })
}

pub fn export_header() -> impl Strategy<Value = ExportHeader> {
    (
        any::<[u8; 16]>(),
        xformat::MIN_KDF_MEMORY_KIB..=xformat::MAX_KDF_MEMORY_KIB,
        xformat::MIN_KDF_TIME..=xformat::MAX_KDF_TIME,
    )
        .prop_map(|(salt, memory_kib, time)| ExportHeader {
            salt,
            memory_kib,
            time,
        })
}

pub fn keyring_entries() -> impl Strategy<Value = BTreeMap<(u32, u32), [u8; 32]>> {
    proptest::collection::btree_map((any::<u32>(), any::<u32>()), hash(), 0..6)
}

pub fn keyring_bytes(entries: &BTreeMap<(u32, u32), [u8; 32]>) -> Vec<u8> {
    let mut k = Keyring::default();
    for ((c, v), key) in entries {
        k.insert(*c, *v, SecretKey::from_bytes(*key));
    }
    k.encode().to_vec()
}

pub fn keyring_contents(k: &Keyring) -> BTreeMap<(u32, u32), [u8; 32]> {
    k.iter()
        .map(|(c, v, key)| ((c, v), *key.expose()))
        .collect()
}

/// The plaintext of a seen-heads record: table counter, (category, counter, hash)*, and
/// the manifest hash.
pub fn seen_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        proptest::collection::btree_map(any::<u32>(), (any::<u64>(), hash()), 0..6),
        hash(),
    )
        .prop_map(|(table, heads, manifest)| {
            let mut w = Writer::new();
            w.u64(table).u32(heads.len() as u32);
            for (c, (n, h)) in &heads {
                w.u32(*c).u64(*n).raw(h);
            }
            w.raw(&manifest);
            w.finish()
        })
}

pub fn store_name() -> impl Strategy<Value = String> {
    prop_oneof![
        hash().prop_map(|h| names::pack(&h)),
        any::<u32>().prop_map(names::head),
        (any::<u32>(), any::<u32>()).prop_map(|(c, v)| names::category_key(c, v)),
        hash().prop_map(|h| names::key_ack(&h)),
    ]
}

/// A journal file: header, object bytes, BLAKE3 of both.
#[derive(Debug, Clone)]
pub struct JournalFile {
    pub head: bool,
    pub seq: u64,
    pub name: String,
    pub base: Option<[u8; 32]>,
    pub data: Vec<u8>,
}

pub fn journal_file() -> impl Strategy<Value = JournalFile> {
    (
        any::<bool>(),
        any::<u64>(),
        store_name(),
        proptest::option::of(hash()),
        short_bytes(256),
    )
        .prop_map(|(head, seq, name, base, data)| JournalFile {
            head,
            seq,
            name,
            base: if head { base } else { None },
            data,
        })
}

pub fn journal_bytes(j: &JournalFile) -> Vec<u8> {
    let mut b = encode_journal_header(j.head, j.seq, &j.name, j.base.as_ref(), j.data.len() as u64);
    b.extend_from_slice(&j.data);
    let h = blake3::hash(&b);
    b.extend_from_slice(h.as_bytes());
    b
}

pub fn decode_journal(b: &[u8]) -> Result<cirrus::store::writeback::JournalEntry, String> {
    decode_journal_header(&mut &b[..], b.len() as u64, Path::new("journal/objects/x"))
}

pub const SEAL_KEY: [u8; 32] = [0x5a; 32];
pub const SEAL_CTX: &[u8] = b"fuzz context";

pub fn suite() -> impl Strategy<Value = Suite> {
    prop_oneof![Just(Suite::XtsBlake3), Just(Suite::MacOnly)]
}

pub fn open_sealed(suite: Suite, b: &[u8]) -> Result<Vec<u8>, crypto::CryptoError> {
    crypto::open(&SecretKey::from_bytes(SEAL_KEY), suite, SEAL_CTX, b)
}

/// An encrypted export's segments (the part after the clear header) for `plain`.
pub fn export_segments(plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = SealingWriter::new(Vec::new(), SecretKey::from_bytes(SEAL_KEY));
    w.write_all(plain).unwrap();
    w.finish().unwrap().0
}

/// Reads the segments back; Err is the reader's refusal.
pub fn read_segments(b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut r = OpeningReader::new(b, SecretKey::from_bytes(SEAL_KEY));
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}
