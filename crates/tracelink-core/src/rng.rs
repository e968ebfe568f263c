//! A fast per-thread PRNG for ids (SPEC 1.3): wyrand, seeded from the OS through
//! `std`'s `RandomState`. Not cryptographic; ids only need to be unique.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState's keys come from the OS once per thread and then increment; hashing the
    // thread id and a stack address on top keeps two threads from sharing a sequence.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    let local = 0u8;
    h.write_usize(&local as *const u8 as usize);
    h.finish()
}

/// The next 64 random bits of this thread's generator.
pub(crate) fn next_u64() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_do_not_share_a_sequence() {
        let a: Vec<u64> = (0..4).map(|_| next_u64()).collect();
        let b = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert_ne!(a, b);
    }
}
