//! Unique ids for responses and tool calls.

use std::hash::{BuildHasher, Hasher};

/// `prefix` followed by 24 random alphanumeric characters, e.g. `chatcmpl-Xk3…`.
///
/// Randomness comes from the standard library's per-instance hash keys, which are seeded from
/// the OS: unique enough for ids, not for secrets.
pub fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for _ in 0..2 {
        let mut bits = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        for _ in 0..12 {
            id.push(ALPHABET[(bits % 62) as usize] as char);
            bits /= 62;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct_and_well_formed() {
        let a = super::random_id("call_");
        let b = super::random_id("call_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 29);
        assert!(a[5..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
