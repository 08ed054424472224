//! Property-based fuzzing of every decoder that reads bytes a store, a server or a file
//! can hand us (issue 9): heads and head envelopes, pack headers, leaves and their
//! records, manifests (signed, join requests, approvals), category tables, key
//! acknowledgements, data-recovery proofs, export headers and segments, sealed blobs, the home's sealed records
//! (keyring, seen heads), write-back journal headers, the key service's JSON, and the
//! strings a user types (join codes, recovery keys, contact codes).
//!
//! Each decoder gets (a) arbitrary bytes and (b) valid encodings of random objects,
//! mutated by bit flips, truncation, splicing, deletion and 4/8-byte windows overwritten
//! with huge values (the "length field set to 0xFFFFFFFF" case). Every case must return
//! Ok or a typed error, never panic (a panic fails the property), and stay under an
//! allocation bound measured by the counting allocator below. Valid encodings must round
//! trip, and whatever a mutated input decodes to must survive another encode/decode.
//!
//! Cases per property: `PROPTEST_CASES` (default `SUITE_CASES`, 2048: a second or two in
//! release). `scripts/fuzz` runs the same file with many more. Failures are
//! kept in `tests/fuzz_decoders.proptest-regressions` and replayed first on every run;
//! what this file found is kept as the `regression_*` tests at the end.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cirrus::account::local::Keyring;
use cirrus::account::methods::parse_contact_code;
use cirrus::crypto::{self, SecretKey, Suite};
use cirrus::format::ack::Ack;
use cirrus::format::codec::Writer;
use cirrus::format::export::{self as xformat, ExportHeader};
use cirrus::format::head::{Head, split_head_object};
use cirrus::format::manifest::{
    Approval, JoinRequest, Manifest, SignedManifest, decode_head_envelope, encode_head_envelope,
};
use cirrus::format::pack::{check_header, pack_header};
use cirrus::format::record::decode_leaf;
use cirrus::format::recovery_proof::RecoveryProof;
use cirrus::format::table::CategoryTable;
use cirrus::format::{FormatError, names};
use cirrus::home::SeenHeads;
use cirrus::keys::join::JoinCode;
use cirrus::keys::recovery::RecoveryKey;
use cirrus::keyservice::api;
use cirrus::store::writeback::encode_journal_header;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

mod fuzz;

use fuzz::alloc::{check, check_within, measured, segment_bound};
use fuzz::mutate::{apply, arbitrary_bytes, mutations};
use fuzz::objects::*;

// ---------------------------------------------------------------------------------------
// The decoders, each under the allocation bound. They return whether they decoded, and
// check what they decoded survives a second round.

fn head_decodes(b: &[u8]) -> bool {
    let got = check("Head::decode", b, Head::decode);
    if let Ok(h) = &got {
        assert_eq!(&Head::decode(&h.encode()).unwrap(), h);
    }
    check("split_head_object", b, |b| {
        if let Ok((_, rest)) = split_head_object(b) {
            assert_eq!(rest.len(), b.len() - 4);
        }
    });
    check("decode_head_envelope", b, |b| {
        if let Ok(e) = decode_head_envelope(b) {
            assert!(e.sealed.len() < b.len());
        }
    });
    got.is_ok()
}

/// The pack a decoded leaf is taken to come from (what its slot-2 chunks refer to).
const HOME_PACK: [u8; 32] = [7; 32];

fn leaf_decodes(b: &[u8]) -> bool {
    let got = check("decode_leaf", b, |b| decode_leaf(b, &HOME_PACK));
    if let Ok(l) = &got {
        assert_eq!(&decode_leaf(&leaf_bytes(l), &HOME_PACK).unwrap(), l);
    }
    got.is_ok()
}

fn manifest_decodes(b: &[u8]) -> bool {
    let got = check("Manifest::decode", b, Manifest::decode);
    if let Ok(m) = &got {
        assert_eq!(&Manifest::decode(&m.encode()).unwrap(), m);
    }
    got.is_ok()
}

fn signed_manifest_decodes(b: &[u8]) -> bool {
    let got = check("SignedManifest::decode", b, SignedManifest::decode);
    if let Ok(s) = &got {
        assert_eq!(s.encode(), b, "a signed manifest has one encoding");
        manifest_decodes(&s.body);
    }
    got.is_ok()
}

fn table_decodes(b: &[u8]) -> bool {
    let got = check("CategoryTable::decode", b, CategoryTable::decode);
    if let Ok(t) = &got {
        assert_eq!(&CategoryTable::decode(&t.encode()).unwrap(), t);
    }
    got.is_ok()
}

fn join_request_decodes(b: &[u8]) -> bool {
    let got = check("JoinRequest::decode", b, JoinRequest::decode);
    if let Ok(j) = &got {
        assert_eq!(j.encode(), b);
    }
    got.is_ok()
}

fn approval_decodes(b: &[u8]) -> bool {
    let got = check("Approval::decode", b, Approval::decode);
    if let Ok(a) = &got {
        assert_eq!(a.encode(), b);
    }
    got.is_ok()
}

fn ack_decodes(b: &[u8]) -> bool {
    let got = check("Ack::decode", b, Ack::decode);
    if let Ok((a, sig)) = &got {
        assert_eq!(a.encode(sig), b);
    }
    got.is_ok()
}

fn recovery_proof_decodes(b: &[u8]) -> bool {
    let got = check("RecoveryProof::decode", b, RecoveryProof::decode);
    if let Ok(p) = &got {
        assert_eq!(p.encode(), b);
    }
    got.is_ok()
}

fn export_header_decodes(b: &[u8]) -> bool {
    let got = check("ExportHeader::decode", b, ExportHeader::decode);
    if let Ok(h) = &got {
        assert_eq!(&h.encode()[..], b);
    }
    check("export::detect", b, xformat::detect);
    got.is_ok()
}

fn keyring_decodes(b: &[u8]) -> bool {
    let got = check("Keyring::decode", b, Keyring::decode);
    if let Ok(k) = &got {
        let again = Keyring::decode(&k.encode()).unwrap();
        assert_eq!(keyring_contents(&again), keyring_contents(k));
    }
    got.is_ok()
}

fn seen_decodes(b: &[u8]) -> bool {
    let got = check("SeenHeads::reencode", b, SeenHeads::reencode);
    if let Ok(again) = &got {
        assert_eq!(&SeenHeads::reencode(again).unwrap(), again);
    }
    got.is_ok()
}

fn journal_decodes(b: &[u8]) -> bool {
    let got = check("decode_journal_header", b, decode_journal);
    if let Ok(e) = &got {
        assert_eq!(e.data_offset + e.len + 32, b.len() as u64);
    }
    got.is_ok()
}

fn sealed_opens(suite: Suite, b: &[u8]) -> bool {
    check("crypto::open", b, |b| open_sealed(suite, b)).is_ok()
}

fn segments_open(b: &[u8]) -> bool {
    check_within("OpeningReader", b, segment_bound(b.len()), read_segments).is_ok()
}

fn pack_header_checks(b: &[u8]) -> bool {
    check("check_header", b, check_header).is_ok()
}

/// The strings a user types or a store lists, from the same bytes.
fn strings_parse(b: &[u8]) {
    let s = String::from_utf8_lossy(b);
    check("text parsers", s.as_bytes(), |_| {
        let _ = names::parse_pack(&s);
        let _ = xformat::parse_pax_time(b);
        let _ = JoinCode::parse(&s);
        let _ = RecoveryKey::parse(&s);
        let _ = parse_contact_code(&s);
    });
}

/// Decodes `b` as `T`; if it decodes, its JSON decodes again to the same JSON.
fn json_as<T: serde::de::DeserializeOwned + serde::Serialize>(b: &[u8]) -> bool {
    let got = check(std::any::type_name::<T>(), b, |b| {
        serde_json::from_slice::<T>(b)
    });
    if let Ok(v) = &got {
        let once = serde_json::to_vec(v).unwrap();
        let twice = serde_json::to_vec(&serde_json::from_slice::<T>(&once).unwrap()).unwrap();
        assert_eq!(once, twice);
    }
    got.is_ok()
}

/// Every request and response of the key service API, as the server and client read it.
fn api_json_decodes(b: &[u8]) -> usize {
    [
        json_as::<api::ErrorBody>(b),
        json_as::<api::Empty>(b),
        json_as::<api::CreateReq>(b),
        json_as::<api::SaltReq>(b),
        json_as::<api::SaltResp>(b),
        json_as::<api::LoginReq>(b),
        json_as::<api::SessionResp>(b),
        json_as::<api::AccountStatus>(b),
        json_as::<api::FlagsReq>(b),
        json_as::<api::PasswordChangeReq>(b),
        json_as::<api::ResetReq>(b),
        json_as::<api::TotpEnrollResp>(b),
        json_as::<api::TotpConfirmReq>(b),
        json_as::<api::TotpConfirmResp>(b),
        json_as::<api::RevokedResp>(b),
        json_as::<api::WrapReq>(b),
        json_as::<api::WrappedReq>(b),
        json_as::<api::WrappedResp>(b),
        json_as::<api::KeyResp>(b),
        json_as::<api::RetireReq>(b),
        json_as::<api::ServiceStatus>(b),
        json_as::<api::RecordPutReq>(b),
        json_as::<api::RecordNameReq>(b),
        json_as::<api::RecordValueResp>(b),
        json_as::<api::RecordListResp>(b),
        json_as::<api::EscrowPutReq>(b),
        json_as::<api::EscrowOpenReq>(b),
        json_as::<api::EscrowOpenResp>(b),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

/// Valid API bodies to mutate: one per shape.
const API_SAMPLES: &[&str] = &[
    r#"{"error":"too many tries","code":"rate_limited","retry_after":30,"remaining":2}"#,
    r#"{}"#,
    r#"{"account":"alice","salt":"00ff","kdf":{"memory_kib":65536,"time":3,"lanes":1},"auth":"ab"}"#,
    r#"{"account":"alice","auth":"abcd","totp":"123456","device_token":"dd","remember_device":true}"#,
    r#"{"token":"t0","expires_in":3600,"device_token":"x"}"#,
    r#"{"totp_enrolled":true,"drs":false,"escrow":true,"escrow_destroyed":false,"service_version":1}"#,
    r#"{"new_salt":"aa","new_kdf":{"memory_kib":8,"time":1,"lanes":1},"new_auth":"bb"}"#,
    r#"{"account":"a","totp":"1","new_salt":"aa","new_kdf":{"memory_kib":8,"time":1,"lanes":1},"new_auth":"bb","remember_device":false}"#,
    r#"{"ctx":"6869","key":"00112233"}"#,
    r#"{"ctx":"6869","wrapped":"00112233"}"#,
    r#"{"current":3,"live":[1,2,3]}"#,
    r#"{"name":"n","value":"ff"}"#,
    r#"{"names":["a","b","c"]}"#,
    r#"{"verifier":"00","blob":"ff"}"#,
    r#"{"proof":"00"}"#,
    r#"{"below":2}"#,
    r#"{"revoked":4}"#,
    r#"{"uri":"otpauth://totp/x"}"#,
];

/// Cases per property in the suite, unless `PROPTEST_CASES` says otherwise: a second or
/// two in release for the whole file.
const SUITE_CASES: u32 = 2048;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SUITE_CASES);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fuzz_decoders.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_nor_overallocate(b in arbitrary_bytes(), s in suite()) {
        head_decodes(&b);
        pack_header_checks(&b);
        leaf_decodes(&b);
        manifest_decodes(&b);
        signed_manifest_decodes(&b);
        table_decodes(&b);
        join_request_decodes(&b);
        approval_decodes(&b);
        ack_decodes(&b);
        recovery_proof_decodes(&b);
        export_header_decodes(&b);
        keyring_decodes(&b);
        seen_decodes(&b);
        journal_decodes(&b);
        sealed_opens(s, &b);
        segments_open(&b);
        strings_parse(&b);
        api_json_decodes(&b);
    }

    #[test]
    fn heads_round_trip_and_survive_mutation(h in head(), ms in mutations()) {
        let b = h.encode();
        prop_assert_eq!(Head::decode(&b).unwrap(), h);
        head_decodes(&apply(b, &ms));
    }

    #[test]
    fn head_envelopes_survive_mutation(
        kv in any::<u32>(), signer in hash(), sig in sig64(), sealed in short_bytes(256),
        ms in mutations(),
    ) {
        let b = encode_head_envelope(kv, &signer, &sig, &sealed);
        let e = decode_head_envelope(&b).unwrap();
        prop_assert_eq!((e.key_version, e.signature, e.sealed), (kv, Some((signer, sig)), &sealed[..]));
        head_decodes(&apply(b, &ms));
    }

    #[test]
    fn pack_headers_survive_mutation(ms in mutations()) {
        let b = pack_header().to_vec();
        prop_assert!(pack_header_checks(&b));
        pack_header_checks(&apply(b, &ms));
    }

    #[test]
    fn leaves_round_trip_and_survive_mutation(l in leaf(), ms in mutations()) {
        let b = leaf_bytes(&l);
        prop_assert_eq!(decode_leaf(&b, &HOME_PACK).unwrap(), l);
        leaf_decodes(&apply(b, &ms));
    }

    #[test]
    fn manifests_round_trip_and_survive_mutation(m in manifest(), ms in mutations()) {
        let b = m.encode();
        prop_assert_eq!(Manifest::decode(&b).unwrap(), m);
        manifest_decodes(&apply(b, &ms));
    }

    #[test]
    fn signed_manifests_round_trip_and_survive_mutation(s in signed_manifest(), ms in mutations()) {
        let b = s.encode();
        prop_assert_eq!(SignedManifest::decode(&b).unwrap(), s);
        signed_manifest_decodes(&apply(b, &ms));
    }

    #[test]
    fn tables_round_trip_and_survive_mutation(t in table(), ms in mutations()) {
        let b = t.encode();
        prop_assert_eq!(CategoryTable::decode(&b).unwrap(), t);
        table_decodes(&apply(b, &ms));
    }

    #[test]
    fn join_requests_and_approvals_round_trip_and_survive_mutation(
        j in join_request(), a in approval(), ms in mutations(),
    ) {
        let b = j.encode();
        prop_assert_eq!(JoinRequest::decode(&b).unwrap(), j);
        join_request_decodes(&apply(b, &ms));
        let b = a.encode();
        prop_assert_eq!(Approval::decode(&b).unwrap(), a);
        approval_decodes(&apply(b, &ms));
    }

    #[test]
    fn acks_round_trip_and_survive_mutation(a in ack(), sig in sig64(), ms in mutations()) {
        let b = a.encode(&sig);
        prop_assert_eq!(Ack::decode(&b).unwrap(), (a, sig));
        ack_decodes(&apply(b, &ms));
    }

    #[test]
    fn recovery_proofs_round_trip_and_survive_mutation(p in recovery_proof(), ms in mutations()) {
        let b = p.encode();
        prop_assert_eq!(RecoveryProof::decode(&b).unwrap(), p);
        recovery_proof_decodes(&apply(b, &ms));
    }

    #[test]
    fn export_headers_round_trip_and_survive_mutation(h in export_header(), ms in mutations()) {
        let b = h.encode().to_vec();
        prop_assert_eq!(ExportHeader::decode(&b).unwrap(), h);
        export_header_decodes(&apply(b, &ms));
    }

    #[test]
    fn export_segments_round_trip_and_survive_mutation(
        plain in short_bytes(6000), ms in mutations(),
    ) {
        let b = export_segments(&plain);
        prop_assert_eq!(read_segments(&b).unwrap(), plain);
        let m = apply(b.clone(), &ms);
        prop_assert_eq!(segments_open(&m), m == b, "only the unaltered archive opens");
    }

    #[test]
    fn sealed_blobs_round_trip_and_survive_mutation(
        s in suite(), plain in short_bytes(5000), ms in mutations(),
    ) {
        let b = crypto::seal(&SecretKey::from_bytes(SEAL_KEY), s, SEAL_CTX, &plain).unwrap();
        prop_assert_eq!(open_sealed(s, &b).unwrap(), plain);
        let m = apply(b.clone(), &ms);
        prop_assert_eq!(sealed_opens(s, &m), m == b, "only the unaltered blob opens");
    }

    #[test]
    fn keyrings_round_trip_and_survive_mutation(k in keyring_entries(), ms in mutations()) {
        let b = keyring_bytes(&k);
        prop_assert_eq!(keyring_contents(&Keyring::decode(&b).unwrap()), k);
        keyring_decodes(&apply(b, &ms));
    }

    #[test]
    fn seen_records_round_trip_and_survive_mutation(b in seen_bytes(), ms in mutations()) {
        prop_assert_eq!(SeenHeads::reencode(&b).unwrap(), b.clone());
        seen_decodes(&apply(b, &ms));
    }

    #[test]
    fn journal_headers_round_trip_and_survive_mutation(j in journal_file(), ms in mutations()) {
        let b = journal_bytes(&j);
        let e = decode_journal(&b).unwrap();
        prop_assert_eq!(
            (e.seq, &e.name, e.base, e.len),
            (j.seq, &j.name, j.head.then_some(j.base), j.data.len() as u64)
        );
        prop_assert_eq!(&b[e.data_offset as usize..][..j.data.len()], &j.data[..]);
        journal_decodes(&apply(b, &ms));
    }

    #[test]
    fn api_json_survives_mutation(i in any::<Index>(), ms in mutations()) {
        let b = API_SAMPLES[i.index(API_SAMPLES.len())].as_bytes().to_vec();
        prop_assert!(api_json_decodes(&b) > 0);
        api_json_decodes(&apply(b, &ms));
    }

    #[test]
    fn typed_strings_survive_mutation(
        i in any::<Index>(), ms in mutations(), h in hash(),
    ) {
        let samples = [
            names::pack(&h).into_bytes(),
            xformat::pax_time(-1, 500_000_000).into_bytes(),
            b"1767225600.123456789".to_vec(),
            JoinCode::generate().unwrap().grouped().as_bytes().to_vec(),
            RecoveryKey::generate().unwrap().grouped().as_bytes().to_vec(),
            format!("CRC1{}", hex::encode(h)).into_bytes(),
        ];
        strings_parse(&apply(samples[i.index(samples.len())].clone(), &ms));
    }
}

// ---------------------------------------------------------------------------------------
// Regressions and the "huge length" cases spelled out.

/// The counter sees what a decoder would allocate, so the bound means something.
#[test]
fn the_allocation_counter_counts() {
    let (v, peak) = measured(|| vec![1u8; 10 << 20]);
    assert!(peak >= 10 << 20, "{peak}");
    drop(v);
    let (_, peak) = measured(|| Vec::<u64>::with_capacity(1 << 20));
    assert!(peak >= 8 << 20, "{peak}");
    assert!(std::panic::catch_unwind(|| check("x", &[0; 16], |_| vec![0u8; 4 << 20])).is_err());
}

/// A count of u32::MAX in every counted field must be refused before anything is
/// allocated for it.
#[test]
fn huge_counts_are_refused_without_allocating() {
    let mut w = Writer::new();
    w.u16(3)
        .raw(&[0; 4 + 8 + 32 + 4 + 8 + 8 + 8 + 4 + 8])
        .u32(u32::MAX);
    assert!(!head_decodes(&w.finish()));
    assert!(!leaf_decodes(&u32::MAX.to_le_bytes()));
    assert!(!keyring_decodes(&u32::MAX.to_le_bytes()));
    let mut seen = 7u64.to_le_bytes().to_vec();
    seen.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(!seen_decodes(&seen));
    let mut signed = u32::MAX.to_le_bytes().to_vec();
    signed.extend_from_slice(&[0; 96]);
    assert!(!signed_manifest_decodes(&signed));
}

/// Found by this file: the journal header's u16 name length was trusted for a buffer of
/// up to 64 KiB before the 512-byte name limit was checked.
#[test]
fn regression_journal_name_length_is_checked_before_allocating() {
    let mut b = b"CRJ1\x01".to_vec();
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&u16::MAX.to_le_bytes());
    b.resize(150, 0);
    let (got, peak) = measured(|| decode_journal(&b));
    assert!(got.is_err());
    assert!(peak < 4096, "{peak} bytes for a 150-byte header");
}

/// A journal header whose length field is set so that offset + length overflows.
#[test]
fn journal_length_that_overflows_is_refused() {
    let mut b = encode_journal_header(false, 1, "packs/ab/x", None, u64::MAX - 8);
    b.extend_from_slice(&[0; 32]);
    assert!(decode_journal(&b).is_err());
    let mut b = encode_journal_header(true, 1, "heads/00000001", None, u64::MAX);
    b.extend_from_slice(&[0; 32]);
    assert!(decode_journal(&b).is_err());
}

#[test]
fn sealed_blob_length_field_of_u32_max_is_malformed() {
    for s in [Suite::XtsBlake3, Suite::MacOnly] {
        let mut b = crypto::seal(&SecretKey::from_bytes(SEAL_KEY), s, SEAL_CTX, b"x").unwrap();
        b[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!sealed_opens(s, &b));
    }
}

#[test]
fn format_errors_are_typed() {
    assert!(matches!(
        Head::decode(&[3, 0]),
        Err(FormatError::Truncated { .. })
    ));
}
