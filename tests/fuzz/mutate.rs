//! Mutations of valid encodings: bit flips, truncation, huge length fields, insertion,
//! deletion and splicing.

use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    /// A 4-byte window set to a huge or boundary value (a u32 length or count).
    Huge32(Index, u32),
    /// An 8-byte window set to a huge or boundary value (a u64 length, offset, counter).
    Huge64(Index, u64),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// Copies a range of the input over another place (splices one field into another).
    Splice(Index, Index, usize),
    SetByte(Index, u8),
}

pub fn huge32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(0x8000_0000),
        Just(0x7FFF_FFFF),
        Just(0x0100_0000),
        Just(0x10000),
        Just(0),
        any::<u32>(),
    ]
}

pub fn huge64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::MAX - 31),
        Just(1 << 63),
        Just(i64::MAX as u64),
        Just(0xFFFF_FFFF),
        Just(0),
        any::<u64>(),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), huge32()).prop_map(|(i, v)| Mutation::Huge32(i, v)),
        2 => (any::<Index>(), huge64()).prop_map(|(i, v)| Mutation::Huge64(i, v)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1..64usize)
            .prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
    ]
}

pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

pub fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = b.len();
        match m {
            Mutation::FlipBit(i, bit) if n > 0 => b[i.index(n)] ^= 1 << bit,
            Mutation::Truncate(i) => b.truncate(i.index(n + 1)),
            Mutation::Huge32(i, v) if n >= 4 => {
                let at = i.index(n - 3);
                b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            Mutation::Huge64(i, v) if n >= 8 => {
                let at = i.index(n - 7);
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            Mutation::Insert(i, v) => {
                let at = i.index(n + 1);
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, len) if n > 0 => {
                let at = i.index(n);
                b.drain(at..(at + len).min(n));
            }
            Mutation::Splice(from, to, len) if n > 0 => {
                let (f, t) = (from.index(n), to.index(n));
                let len = (*len).min(n - f).min(n - t);
                let chunk = b[f..f + len].to_vec();
                b[t..t + len].copy_from_slice(&chunk);
            }
            Mutation::SetByte(i, v) if n > 0 => b[i.index(n)] = *v,
            _ => {}
        }
    }
    b
}

pub fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..4096)
}
