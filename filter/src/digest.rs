//! Token digests: hashing, hex parsing and the constant-time allowlist lookup.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest of a token.
pub type Digest = [u8; 32];

pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Parses exactly 64 hexadecimal digits (either case) into a digest.
pub fn parse_hex(text: &str) -> Option<Digest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        let high = char::from(*high).to_digit(16)?;
        let low = char::from(*low).to_digit(16)?;
        *out = u8::try_from((high << 4) | low).ok()?;
    }
    Some(digest)
}

/// Finds the position of `presented` in `allowlist` in time that depends only on the
/// length of the allowlist: every entry is compared in full, with no early exit and no
/// data-dependent branch, so response timing says nothing about how close a guess came.
pub fn find_constant_time(allowlist: &[Digest], presented: &Digest) -> Option<usize> {
    // `found` holds index + 1 of the match, or 0; it is updated with masks, not branches.
    let mut found: u32 = 0;
    for (index, candidate) in allowlist.iter().enumerate() {
        let mut difference: u8 = 0;
        for (a, b) in candidate.iter().zip(presented.iter()) {
            difference |= a ^ b;
        }
        // 0xFFFF_FFFF when difference == 0, else 0, computed without a branch:
        // only 0 - 1 sets the top bit of a u32 when difference is at most 255.
        let equal_mask = (u32::from(difference).wrapping_sub(1) >> 31).wrapping_neg();
        let position = u32::try_from(index).unwrap_or(u32::MAX).wrapping_add(1);
        found |= position & equal_mask;
        found = core::hint::black_box(found);
    }
    usize::try_from(found).ok()?.checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hex(d: &Digest) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 test vectors.
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_hex_in_either_case_and_rejects_the_rest() {
        let lower = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(parse_hex(lower), Some(sha256(b"abc")));
        assert_eq!(parse_hex(&lower.to_uppercase()), Some(sha256(b"abc")));
        assert_eq!(parse_hex(&lower[..63]), None);
        assert_eq!(parse_hex(&format!("{lower}0")), None);
        assert_eq!(parse_hex(&lower.replace('b', "g")), None);
        assert_eq!(parse_hex(&format!("+{}", &lower[1..])), None);
        assert_eq!(parse_hex(""), None);
    }

    #[test]
    fn finds_every_position_and_misses_near_neighbours() {
        let list: Vec<Digest> = (0u8..5).map(|i| sha256(&[i])).collect();
        for (i, d) in list.iter().enumerate() {
            assert_eq!(find_constant_time(&list, d), Some(i));
        }
        let mut near = list[3];
        near[31] ^= 1;
        assert_eq!(find_constant_time(&list, &near), None);
        let mut near = list[0];
        near[0] ^= 0x80;
        assert_eq!(find_constant_time(&list, &near), None);
        assert_eq!(find_constant_time(&[], &list[0]), None);
    }
}
