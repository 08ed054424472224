//! Test vectors for a reader in another language (FORMAT.md §15): a data pack with its
//! BlobRefs, a leaf, a head, the signed head envelope, a signed manifest and a change made
//! on the web with its data part, each in `tests/vectors/NAME.txt` as `key = value` lines
//! (inputs, then outputs in hex, or as text for object names).
//!
//! Each vector is checked twice:
//! 1. the crate reproduces the outputs from the inputs (with the nonces given as inputs,
//!    through `crypto::FixedRandom`);
//! 2. the outputs decode under FORMAT.md's rules as written down here, independently of
//!    the crate's decoders: fields read at the spec's offsets, MACs checked and XTS undone
//!    with `blake3`, `aes` and `xts-mode`, signatures checked with `ed25519-dalek`.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aes::Aes256;
use aes::cipher::KeyInit;
use cirrus::crypto::{self, FixedRandom, SecretKey, Suite};
use cirrus::format::codec::Writer;
use cirrus::format::head::Head;
use cirrus::format::manifest::{
    DeviceEntry, DeviceState, HEAD_SIGN_DOMAIN, Manifest, SIGN_DOMAIN, SignedManifest,
    encode_head_envelope, head_signed_message,
};
use cirrus::format::pack::{BlobRef, pack_header};
use cirrus::format::record::{
    Attr, ChunkRef, DirEntry, OwnBlob, OwnChunk, PatchRef, Payload, Record, Time, encode_leaf,
    encode_leaf_with,
};
use cirrus::format::table::{CategoryEntry, CategoryTable, Class};
use cirrus::format::web_change::{self, Seen, WebChange, WebOp};
use cirrus::format::{Context, ObjKind};
use cirrus::keys::device::DeviceIdentity;
use std::cell::RefCell;
use std::collections::BTreeMap;
use xts_mode::{Xts128, get_tweak_default};

// ---------------------------------------------------------------- vector files

struct Vector {
    name: &'static str,
    lines: Vec<(String, String)>,
    problems: RefCell<Vec<String>>,
}

impl Vector {
    fn load(name: &'static str) -> Vector {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap_or_else(|| panic!("{path}: {l}"));
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        Vector {
            name,
            lines,
            problems: RefCell::default(),
        }
    }
    fn all(&self, key: &str) -> Vec<Vec<&str>> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.split(' ').collect())
            .collect()
    }
    fn get(&self, key: &str) -> &str {
        let mut it = self.lines.iter().filter(|(k, _)| k == key);
        let v = it
            .next()
            .unwrap_or_else(|| panic!("{}: no {key}", self.name));
        assert!(it.next().is_none(), "{}: {key} twice", self.name);
        &v.1
    }
    fn hex(&self, key: &str) -> Vec<u8> {
        unhex(self.get(key))
    }
    fn num<T: std::str::FromStr>(&self, key: &str) -> T {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{}: {key}", self.name))
    }
    /// An output: the file must hold exactly these bytes under `key`. Every mismatch is
    /// collected and reported in the file's own syntax by `done`.
    fn output(&self, key: &str, got: &[u8]) {
        let want = self.lines.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if want.map(|w| unhex(w)) != Some(got.to_vec()) {
            self.problems
                .borrow_mut()
                .push(format!("{key} = {}", hex::encode(got)));
        }
    }
    /// An output that is text (an object name), checked and reported like `output`.
    fn output_text(&self, key: &str, got: &str) {
        let want = self.lines.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if want.map(String::as_str) != Some(got) {
            self.problems.borrow_mut().push(format!("{key} = {got}"));
        }
    }
    fn done(&self) {
        let p = self.problems.borrow();
        assert!(
            p.is_empty(),
            "{}: outputs differ; the code gives\n{}",
            self.name,
            p.join("\n")
        );
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|_| panic!("not hex: {s}"))
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into()
        .unwrap_or_else(|_| panic!("{} bytes, expected {N}", b.len()))
}

fn n<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

// ------------------------------------------------- the spec, written independently

/// Little-endian reader over a byte string, by offset (FORMAT.md conventions).
struct At<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> At<'a> {
    fn new(b: &'a [u8]) -> Self {
        At { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(arr(self.take(2)))
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(arr(self.take(4)))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(arr(self.take(8)))
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(arr(self.take(8)))
    }
    fn h(&mut self) -> [u8; 32] {
        arr(self.take(32))
    }
    /// `bytes`: u32 length, then that many bytes.
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        self.take(n)
    }
    fn end(&self) {
        assert_eq!(self.at, self.b.len(), "trailing bytes");
    }
}

/// §2: the 31-byte context.
fn context(kind: u8, category: u32, ino: u64, index: u64) -> Vec<u8> {
    let mut c = b"cirrus".to_vec();
    c.extend_from_slice(&1u16.to_le_bytes());
    c.push(kind);
    c.extend_from_slice(&category.to_le_bytes());
    c.extend_from_slice(&ino.to_le_bytes());
    c.extend_from_slice(&index.to_le_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

/// §1.2.
fn padded_len(n: usize) -> usize {
    if n < 16 {
        16
    } else if !n.is_multiple_of(4096) && n % 4096 < 16 {
        n + 16 - n % 4096
    } else {
        n
    }
}

/// §1.4: opens a sealed blob (suite, nonce, len, body, tag) with only the primitives.
fn spec_open(key: &[u8], suite: u8, ctx: &[u8], sealed: &[u8]) -> Vec<u8> {
    assert_eq!(sealed[0], suite, "suite");
    let nonce = &sealed[1..17];
    let len = u32::from_le_bytes(arr(&sealed[17..21])) as usize;
    let body_len = if suite == 1 { padded_len(len) } else { len };
    assert_eq!(sealed.len(), 21 + body_len + 32, "sealed length");
    let mut h = blake3::Hasher::new_derive_key("cirrus 2026-11-28 seal v1 subkeys");
    h.update(&[suite]).update(key).update(nonce);
    let mut okm = [0u8; 96];
    h.finalize_xof().fill(&mut okm);
    let mut mac = blake3::Hasher::new_keyed(&arr(&okm[64..]));
    mac.update(&(ctx.len() as u64).to_le_bytes())
        .update(ctx)
        .update(&sealed[..21 + body_len]);
    assert_eq!(
        mac.finalize().as_bytes(),
        &sealed[21 + body_len..],
        "MAC (§1.3)"
    );
    let mut body = sealed[21..21 + body_len].to_vec();
    if suite == 1 {
        let xts = Xts128::new(
            Aes256::new_from_slice(&okm[..32]).unwrap(),
            Aes256::new_from_slice(&okm[32..64]).unwrap(),
        );
        xts.decrypt_area(&mut body, 4096, 0, get_tweak_default);
    }
    body.truncate(len);
    body
}

/// §9b: verifies an Ed25519 signature over `"cirrus-sig-v1\0" | u32 len(domain) | domain |
/// message` with ed25519-dalek's strict verification.
fn spec_verify(signer: &[u8; 32], domain: &str, msg: &[u8], sig: &[u8]) {
    let mut m = b"cirrus-sig-v1\0".to_vec();
    m.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    m.extend_from_slice(domain.as_bytes());
    m.extend_from_slice(msg);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(signer).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&arr(sig));
    vk.verify_strict(&m, &sig)
        .unwrap_or_else(|_| panic!("signature ({domain}) does not verify"));
}

/// §4: a BlobRef, and the blob it names inside `pack`, checked as a reader must.
fn spec_blob<'a>(pack: &'a [u8], r: &[u8]) -> &'a [u8] {
    let mut a = At::new(r);
    assert_eq!(a.h(), *blake3::hash(pack).as_bytes(), "pack id");
    let (off, len, tag) = (a.u32() as usize, a.u32() as usize, a.h());
    a.end();
    let blob = &pack[off..off + len];
    assert_eq!(blob[len - 32..], tag, "ref tag");
    blob
}

fn spec_pack_header(pack: &[u8]) {
    assert_eq!(&pack[..8], b"CRPK\x01\x00\x00\x00", "pack header (§4)");
}

// ------------------------------------------------------------------- pack vector

fn key_of(v: &Vector) -> SecretKey {
    SecretKey::from_bytes(arr(&v.hex("category_key")))
}

fn suite_of(v: &Vector) -> Suite {
    match v.num::<u8>("suite") {
        1 => Suite::XtsBlake3,
        _ => Suite::MacOnly,
    }
}

fn ref_bytes(r: &BlobRef) -> Vec<u8> {
    let mut w = Writer::new();
    r.write(&mut w);
    w.finish()
}

#[test]
fn pack_and_blob_refs() {
    let v = Vector::load("pack.txt");
    let (key, suite, cat) = (key_of(&v), suite_of(&v), v.num::<u32>("category"));
    let mut pack = pack_header().to_vec();
    let mut blobs = Vec::new();
    for c in v.all("chunk") {
        let (ino, idx) = (n::<u64>(c[0]), n::<u64>(c[1]));
        let mut rng = FixedRandom::new(unhex(c[3]));
        let ctx = Context::chunk(cat, ino, idx).to_bytes();
        let off =
            crypto::seal_append_with(&mut rng, &key, suite, &ctx, &unhex(c[2]), &mut pack).unwrap();
        blobs.push((off, pack.len() - off));
    }
    let id = crypto::hash(&pack);
    v.output("pack", &pack);
    v.output("pack_id", &id);
    for (i, (off, len)) in blobs.iter().enumerate() {
        let r = BlobRef {
            pack: id,
            offset: *off as u32,
            len: *len as u32,
            tag: crypto::peek_tag(&pack[*off..off + len]).unwrap(),
        };
        v.output(&format!("ref.{i}"), &ref_bytes(&r));
    }
    v.done();

    // The spec's reading.
    let pack = v.hex("pack");
    spec_pack_header(&pack);
    for (i, c) in v.all("chunk").iter().enumerate() {
        let blob = spec_blob(&pack, &v.hex(&format!("ref.{i}")));
        let ctx = context(1, cat, n(c[0]), n(c[1]));
        assert_eq!(spec_open(key.expose(), 1, &ctx, blob), unhex(c[2]));
    }
}

// ------------------------------------------------------------------- leaf vector

/// A directory entry as (kind, ino, name).
type Entry = (u8, u64, Vec<u8>);

/// One record of leaf.txt as its lines give it, and as the spec's reading gives it back.
#[derive(Debug, Default, PartialEq)]
struct RecIn {
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    times: Vec<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    dir: Option<(u64, Vec<Entry>)>,
    file: Option<(u64, Vec<Vec<u8>>)>,
}

fn leaf_inputs(v: &Vector) -> BTreeMap<u64, RecIn> {
    let t = v.all("time")[0].clone();
    let time = (n::<i64>(t[0]), n::<u32>(t[1]));
    let mut recs = BTreeMap::new();
    for r in v.all("record") {
        let rec = RecIn {
            mode: u32::from_str_radix(r[1], 8).unwrap(),
            nlink: n(r[2]),
            uid: 1000,
            gid: 1000,
            times: vec![time; 4],
            ..Default::default()
        };
        recs.insert(n::<u64>(r[0]), rec);
    }
    fn at<'a>(recs: &'a mut BTreeMap<u64, RecIn>, ino: &str) -> &'a mut RecIn {
        recs.get_mut(&n::<u64>(ino)).unwrap()
    }
    for d in v.all("dir") {
        at(&mut recs, d[0]).dir = Some((n(d[1]), vec![]));
    }
    for e in v.all("entry") {
        let dir = at(&mut recs, e[0]).dir.as_mut().unwrap();
        dir.1.push((n(e[1]), n(e[2]), e[3].as_bytes().to_vec()));
    }
    for f in v.all("file") {
        at(&mut recs, f[0]).file = Some((n(f[1]), vec![]));
    }
    for c in v.all("chunk") {
        at(&mut recs, c[0])
            .file
            .as_mut()
            .unwrap()
            .1
            .push(unhex(c[1]));
    }
    for x in v.all("xattr") {
        at(&mut recs, x[0])
            .xattrs
            .push((x[1].as_bytes().to_vec(), x[2].as_bytes().to_vec()));
    }
    recs
}

fn record_of(r: &RecIn) -> Record {
    let t = |i: usize| Time {
        sec: r.times[i].0,
        nsec: r.times[i].1,
    };
    let payload = match (&r.dir, &r.file) {
        (Some((parent, entries)), _) => Payload::Dir {
            parent: *parent,
            entries: entries
                .iter()
                .map(|(kind, ino, name)| {
                    (
                        name.clone(),
                        DirEntry {
                            ino: *ino,
                            kind: *kind,
                        },
                    )
                })
                .collect(),
        },
        (_, Some((size, chunks))) => Payload::File {
            size: *size,
            chunks: chunks.iter().map(|c| Some(chunk_ref_of(c))).collect(),
        },
        _ => Payload::Special,
    };
    Record {
        attr: Attr {
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            nlink: r.nlink,
            rdev: 0,
            atime: t(0),
            mtime: t(1),
            ctime: t(2),
            btime: t(3),
        },
        xattrs: r.xattrs.iter().cloned().collect(),
        payload,
    }
}

/// A slot as the spec reader gives it back: a ref (72 bytes), or a patched chunk's base
/// ref, patch ref and sector mask (152 bytes).
fn chunk_ref_of(b: &[u8]) -> ChunkRef {
    match b.len() {
        72 => ChunkRef::whole(blob_ref(b)),
        152 => ChunkRef {
            base: blob_ref(&b[..72]),
            patch: Some(PatchRef {
                blob: blob_ref(&b[72..144]),
                sectors: u64::from_le_bytes(arr(&b[144..])),
            }),
        },
        n => panic!("a slot of {n} bytes"),
    }
}

fn blob_ref(b: &[u8]) -> BlobRef {
    BlobRef {
        pack: arr(&b[..32]),
        offset: u32::from_le_bytes(arr(&b[32..36])),
        len: u32::from_le_bytes(arr(&b[36..40])),
        tag: arr(&b[40..72]),
    }
}

/// §5.1 and §5.2, field by field, for a leaf read from pack `home` (what a slot `02` names;
/// its slot is given back as the BlobRef it stands for, and a slot `03` as its base's and
/// patch's and its mask, see `chunk_ref_of`).
fn spec_leaf(plain: &[u8], home: &[u8; 32]) -> BTreeMap<u64, RecIn> {
    let mut a = At::new(plain);
    let mut out = BTreeMap::new();
    for _ in 0..a.u32() {
        let ino = a.u64();
        let mut r = RecIn {
            mode: a.u32(),
            uid: a.u32(),
            gid: a.u32(),
            nlink: a.u32(),
            ..Default::default()
        };
        assert_eq!(a.u64(), 0, "rdev");
        r.times = (0..4).map(|_| (a.i64(), a.u32())).collect();
        for _ in 0..a.u32() {
            r.xattrs.push((a.bytes().to_vec(), a.bytes().to_vec()));
        }
        match a.u8() {
            1 => {
                let parent = a.u64();
                let entries = (0..a.u32())
                    .map(|_| (a.u8(), a.u64(), a.bytes().to_vec()))
                    .collect();
                r.dir = Some((parent, entries));
            }
            2 => {
                let size = a.u64();
                let blob = |a: &mut At, k: u8| match k {
                    1 => a.take(72).to_vec(),
                    2 => [&home[..], a.take(40)].concat(),
                    k => panic!("chunk slot {k} (this vector has no holes)"),
                };
                let slots = (0..a.u32())
                    .map(|_| match a.u8() {
                        3 => {
                            let k = a.u8();
                            let base = blob(&mut a, k);
                            let k = a.u8();
                            let patch = blob(&mut a, k);
                            [base, patch, a.take(8).to_vec()].concat()
                        }
                        k => blob(&mut a, k),
                    })
                    .collect();
                r.file = Some((size, slots));
            }
            k => panic!("payload kind {k}"),
        }
        out.insert(ino, r);
    }
    a.end();
    out
}

#[test]
fn leaf() {
    let v = Vector::load("leaf.txt");
    let (key, suite, cat) = (key_of(&v), suite_of(&v), v.num::<u32>("category"));
    let no: u64 = v.num("leaf");
    let inputs = leaf_inputs(&v);
    let records: BTreeMap<u64, Record> = inputs.iter().map(|(i, r)| (*i, record_of(r))).collect();
    let plain = encode_leaf(&records.iter().map(|(i, r)| (*i, r)).collect());
    v.output("plaintext", &plain);
    let ctx = Context::new(ObjKind::Leaf, cat, 0, no).to_bytes();
    let mut rng = FixedRandom::new(v.hex("nonce"));
    let sealed = crypto::seal_with(&mut rng, &key, suite, &ctx, &plain).unwrap();
    v.output("sealed", &sealed);
    let mut pack = pack_header().to_vec();
    pack.extend_from_slice(&sealed);
    v.output("pack", &pack);
    let r = BlobRef {
        pack: crypto::hash(&pack),
        offset: 8,
        len: sealed.len() as u32,
        tag: crypto::peek_tag(&sealed).unwrap(),
    };
    v.output("ref", &ref_bytes(&r));
    v.done();

    // The spec's reading, from the metadata pack through the ref.
    let pack = v.hex("pack");
    spec_pack_header(&pack);
    let blob = spec_blob(&pack, &v.hex("ref"));
    let plain = spec_open(key.expose(), 1, &context(2, cat, 0, no), blob);
    assert_eq!(spec_leaf(&plain, &[0; 32]), inputs);
    // The chunk refs are those of pack.txt.
    let p = Vector::load("pack.txt");
    assert_eq!(inputs[&2].file.as_ref().unwrap().1[0], p.hex("ref.0"));
    assert_eq!(inputs[&3].file.as_ref().unwrap().1[0], p.hex("ref.1"));
}

// ------------------------------------------------------------- commit pack vector

/// A commit's last pack (commit_pack.txt, patch.txt): leaf `no` of `cat` sealed after what
/// `pack` holds, checked as the vector's outputs `plaintext`, `pack` and `leaf_ref`. The
/// pack's id.
fn seal_leaf_last(
    v: &Vector,
    key: &SecretKey,
    suite: Suite,
    (cat, no): (u32, u64),
    plain: &[u8],
    pack: &mut Vec<u8>,
) -> [u8; 32] {
    v.output("plaintext", plain);
    let ctx = Context::new(ObjKind::Leaf, cat, 0, no).to_bytes();
    let mut rng = FixedRandom::new(v.hex("leaf_nonce"));
    let leaf_off = crypto::seal_append_with(&mut rng, key, suite, &ctx, plain, pack).unwrap();
    v.output("pack", pack);
    let id = crypto::hash(pack);
    let leaf_ref = BlobRef {
        pack: id,
        offset: leaf_off as u32,
        len: (pack.len() - leaf_off) as u32,
        tag: crypto::peek_tag(&pack[leaf_off..]).unwrap(),
    };
    v.output("leaf_ref", &ref_bytes(&leaf_ref));
    id
}

/// commit_pack.txt: a commit's one pack, the chunk first and then the leaf that refers to
/// it with slot 02 (FORMAT.md §4, §5.1).
#[test]
fn commit_pack() {
    let v = Vector::load("commit_pack.txt");
    let (key, suite, cat) = (key_of(&v), suite_of(&v), v.num::<u32>("category"));
    let no: u64 = v.num("leaf");
    let blob = v.all("blob")[0].clone();
    let (ino, idx) = (n::<u64>(blob[0]), n::<u64>(blob[1]));
    let mut pack = pack_header().to_vec();
    let mut rng = FixedRandom::new(unhex(blob[3]));
    let ctx = Context::chunk(cat, ino, idx).to_bytes();
    let off =
        crypto::seal_append_with(&mut rng, &key, suite, &ctx, &unhex(blob[2]), &mut pack).unwrap();
    let own = OwnBlob {
        offset: off as u32,
        len: (pack.len() - off) as u32,
        tag: crypto::peek_tag(&pack[off..]).unwrap(),
    };
    // The file's one slot: what the record held before does not matter, slot 02 is
    // written for it.
    let mut inputs = leaf_inputs(&v);
    inputs.get_mut(&ino).unwrap().file.as_mut().unwrap().1 = vec![vec![0; 72]];
    let records: BTreeMap<u64, Record> = inputs.iter().map(|(i, r)| (*i, record_of(r))).collect();
    let plain = encode_leaf_with(
        &records.iter().map(|(i, r)| (*i, r)).collect(),
        &BTreeMap::from([(
            (ino, idx),
            OwnChunk {
                blob: own,
                patch_of: None,
            },
        )]),
    );
    let id = seal_leaf_last(&v, &key, suite, (cat, no), &plain, &mut pack);
    let chunk_ref = BlobRef {
        pack: id,
        offset: own.offset,
        len: own.len,
        tag: own.tag,
    };
    v.output("chunk_ref", &ref_bytes(&chunk_ref));
    v.done();
    // The code reads the slot back as that ref.
    let back = cirrus::format::record::decode_leaf(&plain, &id).unwrap();
    let Payload::File { chunks, .. } = &back[&ino].payload else {
        panic!("not a file")
    };
    assert_eq!(chunks[idx as usize], Some(ChunkRef::whole(chunk_ref)));

    // The spec's reading: the leaf through the head's ref, the chunk through the slot,
    // whose pack is the one the leaf came from.
    let pack = v.hex("pack");
    spec_pack_header(&pack);
    let leaf_ref = v.hex("leaf_ref");
    let home: [u8; 32] = arr(&leaf_ref[..32]);
    let plain = spec_open(
        key.expose(),
        1,
        &context(2, cat, 0, no),
        spec_blob(&pack, &leaf_ref),
    );
    let mut read = spec_leaf(&plain, &home);
    let slot = read
        .get_mut(&ino)
        .unwrap()
        .file
        .as_mut()
        .unwrap()
        .1
        .remove(idx as usize);
    assert_eq!(slot, v.hex("chunk_ref"));
    let chunk = spec_open(
        key.expose(),
        1,
        &context(1, cat, ino, idx),
        spec_blob(&pack, &slot),
    );
    assert_eq!(chunk, unhex(blob[2]));
    inputs
        .get_mut(&ino)
        .unwrap()
        .file
        .as_mut()
        .unwrap()
        .1
        .clear();
    assert_eq!(read, inputs);
}

// -------------------------------------------------------------- patch vector

/// §5.1b, read as the spec says: the chunk is the base's bytes up to the patch's length,
/// zeros after them, and the patch's sectors (4096 bytes each, the last cut at the length)
/// over both, in mask order.
fn spec_apply(base: &[u8], base_tag: &[u8], mask: u64, patch: &[u8]) -> Vec<u8> {
    let mut a = At::new(patch);
    assert_eq!(a.h()[..], *base_tag, "the patch names its base");
    let len = a.u32() as usize;
    assert_eq!(a.u64(), mask, "the patch's mask is the slot's");
    assert!(len >= base.len() && len <= 262_144);
    let mut out = base.to_vec();
    out.resize(len, 0);
    for s in (0..64).filter(|s| mask >> s & 1 == 1) {
        let (start, end) = (s * 4096, ((s + 1) * 4096).min(len));
        assert!(start < len, "sector {s} past the end");
        out[start..end].copy_from_slice(a.take(end - start));
    }
    a.end();
    out
}

/// patch.txt: a stored chunk, the patch a small write made of it, and the leaf (in the
/// patch's pack) that names both with slot 03 (FORMAT.md §5.1, §5.1b).
#[test]
fn patch() {
    let v = Vector::load("patch.txt");
    let (key, suite, cat) = (key_of(&v), suite_of(&v), v.num::<u32>("category"));
    let (no, ino, mask): (u64, u64, u64) = (v.num("leaf"), v.num("ino"), v.num("sectors"));
    let base: Vec<u8> = (0..100usize).map(|i| (i * 7) as u8).collect();
    let mut chunk = base.clone();
    chunk.resize(4196, 0);
    for (i, b) in chunk.iter_mut().enumerate().skip(4096) {
        *b = (i * 13 + 5) as u8;
    }
    // The base's own pack.
    let mut base_pack = pack_header().to_vec();
    let mut rng = FixedRandom::new(v.hex("base_nonce"));
    let ctx = Context::chunk(cat, ino, 0).to_bytes();
    let off = crypto::seal_append_with(&mut rng, &key, suite, &ctx, &base, &mut base_pack).unwrap();
    v.output("base_pack", &base_pack);
    let base_ref = BlobRef {
        pack: crypto::hash(&base_pack),
        offset: off as u32,
        len: (base_pack.len() - off) as u32,
        tag: crypto::peek_tag(&base_pack[off..]).unwrap(),
    };
    v.output("base_ref", &ref_bytes(&base_ref));
    // The patch, then the leaf, in the commit's pack.
    let patch_plain = cirrus::format::patch::encode(&base_ref.tag, &chunk, mask).unwrap();
    v.output("patch_plaintext", &patch_plain);
    let mut pack = pack_header().to_vec();
    let mut rng = FixedRandom::new(v.hex("patch_nonce"));
    let ctx = Context::patch(cat, ino, 0).to_bytes();
    let off =
        crypto::seal_append_with(&mut rng, &key, suite, &ctx, &patch_plain, &mut pack).unwrap();
    let own = OwnBlob {
        offset: off as u32,
        len: (pack.len() - off) as u32,
        tag: crypto::peek_tag(&pack[off..]).unwrap(),
    };
    let mut inputs = leaf_inputs(&v);
    inputs.get_mut(&ino).unwrap().file.as_mut().unwrap().1 = vec![vec![0; 72]];
    let records: BTreeMap<u64, Record> = inputs.iter().map(|(i, r)| (*i, record_of(r))).collect();
    let plain = encode_leaf_with(
        &records.iter().map(|(i, r)| (*i, r)).collect(),
        &BTreeMap::from([(
            (ino, 0),
            OwnChunk {
                blob: own,
                patch_of: Some((base_ref, mask)),
            },
        )]),
    );
    let id = seal_leaf_last(&v, &key, suite, (cat, no), &plain, &mut pack);
    v.done();
    // The code's reading: the slot, and the chunk laid together.
    let back = cirrus::format::record::decode_leaf(&plain, &id).unwrap();
    let Payload::File { chunks, .. } = &back[&ino].payload else {
        panic!("not a file")
    };
    let slot = chunks[0].unwrap();
    assert_eq!(slot.base, base_ref);
    assert_eq!(slot.patch.unwrap().blob, own.as_ref_in(id));
    let laid = cirrus::format::patch::apply(&base, &base_ref.tag, mask, &patch_plain).unwrap();
    assert_eq!(laid, chunk);

    // The spec's reading, from the stored bytes alone: the leaf through its ref, the base
    // through the slot's first ref, the patch in the leaf's own pack.
    let (base_pack, pack) = (v.hex("base_pack"), v.hex("pack"));
    spec_pack_header(&base_pack);
    spec_pack_header(&pack);
    let leaf_ref = v.hex("leaf_ref");
    let home: [u8; 32] = arr(&leaf_ref[..32]);
    let plain = spec_open(
        key.expose(),
        1,
        &context(2, cat, 0, no),
        spec_blob(&pack, &leaf_ref),
    );
    let read = spec_leaf(&plain, &home);
    let slot = &read[&ino].file.as_ref().unwrap().1[0];
    assert_eq!(slot.len(), 152, "slot 03: base, patch, mask");
    assert_eq!(slot[..72], v.hex("base_ref")[..]);
    let base = spec_open(
        key.expose(),
        1,
        &context(1, cat, ino, 0),
        spec_blob(&base_pack, &slot[..72]),
    );
    let patch = spec_open(
        key.expose(),
        1,
        &context(16, cat, ino, 0),
        spec_blob(&pack, &slot[72..144]),
    );
    assert_eq!(patch, v.hex("patch_plaintext"));
    let mask = u64::from_le_bytes(arr(&slot[144..]));
    assert_eq!(spec_apply(&base, &slot[40..72], mask, &patch), chunk);
    // The patch is not a chunk: opened as one (context kind 1), it fails.
    let sealed = spec_blob(&pack, &slot[72..144]);
    assert!(crypto::open(&key, suite, &Context::chunk(cat, ino, 0).to_bytes(), sealed).is_err());
}

// ------------------------------------------------------------------- head vector

fn head_of(v: &Vector) -> Head {
    Head {
        category: v.num("category"),
        counter: v.num("counter"),
        prev: arr(&v.hex("prev")),
        key_version: v.num("key_version"),
        next_ino: v.num("next_ino"),
        leaves: v
            .all("leaf")
            .iter()
            .map(|l| (n(l[0]), blob_ref(&unhex(l[1]))))
            .collect(),
        bytes: v.num("bytes"),
        inodes: v.num("inodes"),
        rotating_from: v.num("rotating_from"),
        rotate_cursor: v.num("rotate_cursor"),
        alloc: v.all("alloc").iter().map(|a| (n(a[0]), n(a[1]))).collect(),
        web_seq: 0,
    }
}

#[test]
fn head() {
    let v = Vector::load("head.txt");
    let (key, suite) = (key_of(&v), suite_of(&v));
    let h = head_of(&v);
    let plain = h.encode();
    v.output("plaintext", &plain);
    let ctx = Context::new(ObjKind::Head, h.category, 0, 0).to_bytes();
    let mut rng = FixedRandom::new(v.hex("nonce"));
    v.output(
        "sealed",
        &crypto::seal_with(&mut rng, &key, suite, &ctx, &plain).unwrap(),
    );
    v.done();

    // The spec's reading: §5.3, at the offsets FORMAT.md gives.
    let b = spec_open(
        key.expose(),
        1,
        &context(3, h.category, 0, 0),
        &v.hex("sealed"),
    );
    assert_eq!(b.len(), 94 + 80 * h.leaves.len() + 12 * h.alloc.len());
    let mut a = At::new(&b);
    assert_eq!(a.u16(), 3, "head layout");
    assert_eq!(a.u32(), h.category);
    assert_eq!(a.u64(), h.counter);
    assert_eq!(a.h(), h.prev);
    assert_eq!(a.u32(), h.key_version);
    assert_eq!(a.u64(), h.next_ino);
    assert_eq!(a.u64(), h.bytes);
    assert_eq!(a.u64(), h.inodes);
    assert_eq!(a.u32(), h.rotating_from);
    assert_eq!(a.u64(), h.rotate_cursor);
    assert_eq!(a.at, 86);
    let leaves = v.all("leaf");
    assert_eq!(a.u32() as usize, leaves.len());
    for l in &leaves {
        assert_eq!(a.u64(), n::<u64>(l[0]));
        assert_eq!(a.take(72), &unhex(l[1])[..]);
    }
    let allocs = v.all("alloc");
    assert_eq!(a.u32() as usize, allocs.len());
    for x in &allocs {
        assert_eq!((a.u32(), a.u64()), (n(x[0]), n(x[1])));
    }
    a.end();
    // Its leaf is the one of leaf.txt.
    assert_eq!(unhex(leaves[0][1]), Vector::load("leaf.txt").hex("ref"));
}

// ------------------------------------------------------------ signed head envelope

#[test]
fn head_envelope() {
    let v = Vector::load("head_envelope.txt");
    let account: [u8; 16] = arr(&v.hex("account_id"));
    let (cat, kv): (u32, u32) = (v.num("category"), v.num("key_version"));
    let seed: [u8; 32] = arr(&v.hex("signer_seed"));
    let sealed = v.hex("sealed");
    let id = DeviceIdentity::from_secrets(&seed, &[0; 32]);
    let msg = head_signed_message(&account, cat, kv, &sealed);
    v.output("signed_message", &msg);
    let sig = id.sign(HEAD_SIGN_DOMAIN, &msg);
    let obj = encode_head_envelope(kv, &id.public().sign, &sig, &sealed);
    v.output("object", &obj);
    v.output("object_hash", &crypto::hash(&obj));
    v.done();

    // The spec's reading: §11.2.
    let obj = v.hex("object");
    let mut a = At::new(&obj);
    assert_eq!(a.take(4), b"CRH2");
    assert_eq!(a.u32(), kv);
    let signer = a.h();
    let sig = a.take(64);
    assert_eq!(a.at, 104);
    let sealed_in = &obj[104..];
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(signer, dalek.verifying_key().to_bytes(), "signer");
    let mut m = account.to_vec();
    m.extend_from_slice(&cat.to_le_bytes());
    m.extend_from_slice(&kv.to_le_bytes());
    m.extend_from_slice(blake3::hash(sealed_in).as_bytes());
    spec_verify(&signer, "category head", &m, sig);
    // It envelopes head.txt's sealed head.
    assert_eq!(sealed_in, &Vector::load("head.txt").hex("sealed")[..]);
}

// ------------------------------------------------------------------ in FORMAT.md

/// FORMAT.md prints every vector file whole, so a reader of the spec has them.
#[test]
fn format_md_prints_every_vector() {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = std::fs::read_to_string(format!("{root}/docs/FORMAT.md")).unwrap();
    for f in [
        "pack.txt",
        "leaf.txt",
        "commit_pack.txt",
        "patch.txt",
        "head.txt",
        "head_envelope.txt",
        "manifest.txt",
        "web_change.txt",
    ] {
        let text = std::fs::read_to_string(format!("{root}/tests/vectors/{f}")).unwrap();
        let block = format!("`tests/vectors/{f}`:\n\n```\n{text}```\n");
        assert!(
            spec.contains(&block),
            "FORMAT.md does not print {f} as it is"
        );
    }
}

// ---------------------------------------------------------------- manifest vector

fn manifest_of(v: &Vector, id: &DeviceIdentity) -> Manifest {
    let p = id.public();
    Manifest {
        account_id: arr(&v.hex("account_id")),
        counter: v.num("counter"),
        account_key_version: v.num("account_key_version"),
        flags: v.num("flags"),
        devices: v
            .all("device")
            .iter()
            .map(|d| DeviceEntry {
                name: d[0].to_string(),
                sign: p.sign,
                kx: p.kx,
                state: if d[1] == "1" {
                    DeviceState::Active
                } else {
                    DeviceState::Removed
                },
                features: n(d[2]),
            })
            .collect(),
        recovery: vec![],
        key_commitments: v
            .all("commitment")
            .iter()
            .map(|c| (n(c[0]), n(c[1]), arr(&unhex(c[2]))))
            .collect(),
        table: CategoryTable {
            counter: v.num("table_counter"),
            next_id: v.num("table_next_id"),
            entries: v
                .all("table_entry")
                .iter()
                .map(|e| CategoryEntry {
                    id: n(e[0]),
                    key_version: n(e[1]),
                    class: Class::from_u8(n(e[2])).unwrap(),
                    retired: e[3] == "1",
                    name: e[4].to_string(),
                })
                .collect(),
        },
    }
}

#[test]
fn manifest() {
    let v = Vector::load("manifest.txt");
    let seed: [u8; 32] = arr(&v.hex("signer_seed"));
    let kx: [u8; 32] = arr(&v.hex("kx_secret"));
    let id = DeviceIdentity::from_secrets(&seed, &kx);
    let body = manifest_of(&v, &id).encode();
    v.output("body", &body);
    let signed = SignedManifest {
        sig: id.sign(SIGN_DOMAIN, &body),
        signer: id.public().sign,
        body,
    };
    v.output("signed", &signed.encode());
    v.done();
    spec_manifest(&v, &seed, &kx);
}

/// The spec's reading: §11.1, with the table of §5.5 inside.
fn spec_manifest(v: &Vector, seed: &[u8; 32], kx: &[u8; 32]) {
    let signed = v.hex("signed");
    let mut s = At::new(&signed);
    let body = s.bytes();
    let signer = s.h();
    let sig = s.take(64);
    s.end();
    let sign_pub = ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes();
    assert_eq!(signer, sign_pub);
    spec_verify(&signer, "account manifest", body, sig);
    let kx_pub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*kx));

    let mut a = At::new(body);
    assert_eq!(a.take(4), b"CRAM");
    assert_eq!(a.u16(), 1, "manifest layout");
    assert_eq!(a.take(16), &v.hex("account_id")[..]);
    assert_eq!(a.u64(), v.num::<u64>("counter"));
    assert_eq!(a.u32(), v.num::<u32>("account_key_version"));
    assert_eq!(a.u8(), v.num::<u8>("flags"));
    let devices = v.all("device");
    assert_eq!(a.u32() as usize, devices.len());
    for d in &devices {
        assert_eq!(a.bytes(), d[0].as_bytes());
        assert_eq!(a.h(), sign_pub);
        assert_eq!(a.h(), *kx_pub.as_bytes());
        assert_eq!(a.u8(), n::<u8>(d[1]));
        assert_eq!(a.u32(), n::<u32>(d[2]));
    }
    assert_eq!(a.u32(), 0, "recovery methods");
    let commitments = v.all("commitment");
    assert_eq!(a.u32() as usize, commitments.len());
    for c in &commitments {
        assert_eq!((a.u32(), a.u32()), (n(c[0]), n(c[1])));
        assert_eq!(a.take(32), &unhex(c[2])[..]);
    }
    let table = a.bytes();
    a.end();
    let mut t = At::new(table);
    assert_eq!(t.u16(), 1, "table version");
    assert_eq!(t.u64(), v.num::<u64>("table_counter"));
    assert_eq!(t.u32(), v.num::<u32>("table_next_id"));
    let entries = v.all("table_entry");
    assert_eq!(t.u32() as usize, entries.len());
    for e in &entries {
        assert_eq!((t.u32(), t.u32()), (n(e[0]), n(e[1])));
        assert_eq!((t.u8(), t.u8()), (n(e[2]), n(e[3])));
        assert_eq!(t.bytes(), e[4].as_bytes());
    }
    t.end();
}

// -------------------------------------------------------------- web change vector

fn seen_of(s: &[&str]) -> Seen {
    Seen {
        ino: n(s[0]),
        mtime_secs: n(s[1]),
        mtime_nanos: n(s[2]),
        size: n(s[3]),
    }
}

/// A folder line: its segments, as the UTF-8 bytes of the text.
fn segments(v: &Vector, key: &str) -> Vec<Vec<u8>> {
    v.get(key)
        .split(' ')
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// The upload of web_change.txt, listing `part_hash` as its one part.
fn upload_of(v: &Vector, part_hash: [u8; 32]) -> WebChange {
    WebChange {
        seq: v.num("seq"),
        id: arr(&v.hex("id")),
        created: v.num("created"),
        base_counter: v.num("base_counter"),
        base_hash: arr(&v.hex("base_hash")),
        dir: segments(v, "dir"),
        name: v.get("name").as_bytes().to_vec(),
        op: WebOp::Upload {
            size: v.num("size"),
            mtime: v.num("mtime"),
            replaces: Some(seen_of(&v.all("replaces")[0])),
            parts: vec![part_hash],
        },
    }
}

/// The rename of web_change.txt (its `rename_*` lines; the base is the upload's).
fn rename_of(v: &Vector) -> WebChange {
    WebChange {
        seq: v.num("rename_seq"),
        id: arr(&v.hex("rename_id")),
        created: v.num("rename_created"),
        base_counter: v.num("base_counter"),
        base_hash: arr(&v.hex("base_hash")),
        dir: segments(v, "rename_dir"),
        name: v.get("rename_name").as_bytes().to_vec(),
        op: WebOp::Rename {
            seen: seen_of(&v.all("rename_seen")[0]),
            to_dir: segments(v, "rename_to_dir"),
            to_name: v.get("rename_to_name").as_bytes().to_vec(),
        },
    }
}

/// An inbox object as the volume stores it (`seal_web`): the key version, then the blob
/// sealed with the nonce of line `nonce`.
fn web_object(v: &Vector, nonce: &str, ctx: Context, plain: &[u8]) -> Vec<u8> {
    let mut rng = FixedRandom::new(v.hex(nonce));
    let sealed =
        crypto::seal_with(&mut rng, &key_of(v), suite_of(v), &ctx.to_bytes(), plain).unwrap();
    let mut obj = v.num::<u32>("key_version").to_le_bytes().to_vec();
    obj.extend_from_slice(&sealed);
    obj
}

#[test]
fn web_change() {
    let v = Vector::load("web_change.txt");
    let (key, suite, cat) = (key_of(&v), suite_of(&v), v.num::<u32>("category"));
    let kv: u32 = v.num("key_version");
    let id: [u8; 16] = arr(&v.hex("id"));
    let part_ctx = Context::new(ObjKind::WebPart, cat, web_change::part_inode(&id), 0);
    let part_obj = web_object(&v, "part_nonce", part_ctx, &v.hex("part"));
    v.output_text("part_name", &web_change::part_name(cat, &id, 0));
    v.output("part_object", &part_obj);
    let part_hash = crypto::hash(&part_obj);
    v.output("part_hash", &part_hash);
    let upload = upload_of(&v, part_hash);
    let plain = upload.encode();
    v.output("plaintext", &plain);
    let change_ctx = Context::new(ObjKind::WebChange, cat, 0, upload.seq);
    v.output_text("change_name", &web_change::change_name(cat, upload.seq));
    v.output(
        "change_object",
        &web_object(&v, "change_nonce", change_ctx, &plain),
    );
    let rename = rename_of(&v);
    v.output("rename_plaintext", &rename.encode());
    v.done();

    // The crate's own reading gives both changes back, as a device reads them.
    let (got_kv, sealed) = web_change::split_object(&part_obj).unwrap();
    assert_eq!(got_kv, kv);
    let part = crypto::open(&key, suite, &part_ctx.to_bytes(), sealed).unwrap();
    assert_eq!(part, v.hex("part"));
    let change_obj = v.hex("change_object");
    let (got_kv, sealed) = web_change::split_object(&change_obj).unwrap();
    assert_eq!(got_kv, kv);
    let opened = crypto::open(&key, suite, &change_ctx.to_bytes(), sealed).unwrap();
    assert_eq!(WebChange::decode(&opened).unwrap(), upload);
    assert_eq!(
        WebChange::decode(&v.hex("rename_plaintext")).unwrap(),
        rename
    );

    spec_web_change(&v);
}

/// §9f: a change's fields up to its op (layout, seq, id, created, base, dir and name), the
/// lines of a change named with `prefix` ("" for the upload, "rename_" for the rename).
fn spec_change_start(a: &mut At, v: &Vector, prefix: &str) {
    let line = |k: &str| format!("{prefix}{k}");
    assert_eq!(a.u16(), 1, "web change layout");
    assert_eq!(a.u64(), v.num::<u64>(&line("seq")));
    assert_eq!(a.take(16), &v.hex(&line("id"))[..]);
    assert_eq!(a.u64(), v.num::<u64>(&line("created")));
    assert_eq!(a.u64(), v.num::<u64>("base_counter"));
    assert_eq!(a.h(), arr::<32>(&v.hex("base_hash")));
    assert_eq!(a.at, 74);
    spec_path(a, v.get(&line("dir")), v.get(&line("name")));
}

/// §9f: dir (u32 count, then each segment as u32 length || bytes), then name.
fn spec_path(a: &mut At, dir: &str, name: &str) {
    let segs: Vec<&str> = dir.split(' ').collect();
    assert_eq!(a.u32() as usize, segs.len(), "folder depth");
    for s in segs {
        assert_eq!(a.bytes(), s.as_bytes());
    }
    assert_eq!(a.bytes(), name.as_bytes());
}

/// §9f: seen = inode u64, mtime s i64, mtime ns u32, size u64.
fn spec_seen(a: &mut At, s: &[&str]) {
    assert_eq!(a.u64(), n::<u64>(s[0]), "seen inode");
    assert_eq!(a.i64(), n::<i64>(s[1]), "seen mtime s");
    assert_eq!(a.u32(), n::<u32>(s[2]), "seen mtime ns");
    assert_eq!(a.u64(), n::<u64>(s[3]), "seen size");
}

/// The spec's reading: the objects' names (§3), the part and the change opened with the
/// contexts of §2, the change and the rename field by field (§9f).
fn spec_web_change(v: &Vector) {
    let (key, suite) = (v.hex("category_key"), v.num::<u8>("suite"));
    let (cat, kv) = (v.num::<u32>("category"), v.num::<u32>("key_version"));
    let seq: u64 = v.num("seq");
    let id = v.hex("id");
    let part = v.hex("part");

    // The part: web/<cat:08x>/u<id>.<n:08x>, sealed with context WebPart (15), inode the
    // first 8 bytes of the id as u64 LE, index the part number.
    assert_eq!(
        v.get("part_name"),
        format!("web/{cat:08x}/u{}.{:08x}", hex::encode(&id), 0)
    );
    let obj = v.hex("part_object");
    assert_eq!(blake3::hash(&obj).as_bytes()[..], v.hex("part_hash")[..]);
    assert_eq!(u32::from_le_bytes(arr(&obj[..4])), kv, "key version");
    let ino = u64::from_le_bytes(arr(&id[..8]));
    assert_eq!(
        spec_open(&key, suite, &context(15, cat, ino, 0), &obj[4..]),
        part
    );

    // The change: web/<cat:08x>/<seq:016x>, context WebChange (14), inode 0, index seq.
    assert_eq!(v.get("change_name"), format!("web/{cat:08x}/{seq:016x}"));
    let obj = v.hex("change_object");
    assert_eq!(u32::from_le_bytes(arr(&obj[..4])), kv, "key version");
    let plain = spec_open(&key, suite, &context(14, cat, 0, seq), &obj[4..]);
    assert_eq!(plain, v.hex("plaintext"));
    let mut a = At::new(&plain);
    spec_change_start(&mut a, v, "");
    assert_eq!(a.u8(), 1, "op: upload");
    let size = a.u64();
    assert_eq!(size, v.num::<u64>("size"));
    assert_eq!(size, part.len() as u64, "the one part is the whole file");
    assert_eq!(a.i64(), v.num::<i64>("mtime"));
    assert_eq!(a.u8(), 1, "replaces flag");
    spec_seen(&mut a, &v.all("replaces")[0]);
    assert_eq!(a.u32() as u64, size.div_ceil(1 << 20), "part count");
    assert_eq!(a.take(32), &v.hex("part_hash")[..]);
    a.end();

    // The rename: seen, then to dir and to name as dir and name.
    let plain = v.hex("rename_plaintext");
    let mut a = At::new(&plain);
    spec_change_start(&mut a, v, "rename_");
    assert_eq!(a.u8(), 4, "op: rename or move");
    spec_seen(&mut a, &v.all("rename_seen")[0]);
    spec_path(&mut a, v.get("rename_to_dir"), v.get("rename_to_name"));
    a.end();

    // The base is the signed head object of head_envelope.txt.
    assert_eq!(
        v.hex("base_hash"),
        Vector::load("head_envelope.txt").hex("object_hash")
    );
}
