//! Shared parts of tests/fuzz_decoders.rs: the counting allocator, the mutations and
//! the strategies that build valid objects.

pub mod alloc;
pub mod mutate;
pub mod objects;
