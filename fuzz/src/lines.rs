//! The input format of the `decide` and `handover` targets: lines of `name: value`, with
//! backslash escapes so that a seed can be written by hand and still hold any byte.
//!
//! Escapes: `\\`, `\n`, `\r`, `\t`, `\0`, `\xHH` (any byte, so invalid UTF-8 too),
//! `\s<d>` (demo secret number d), `\h<d>` (its SHA-256 in hex), and `\{N}c`, which repeats
//! the byte `c` N times (very long values from a short input; at most [`MAX_REPEAT`] bytes
//! of repeats in a whole input, so that every input stays fast).
//! Any other byte stands for itself; an unknown escape is kept as written.

/// Demo tokens the targets configure. Long and distinctive, so that any 8 consecutive
/// characters of one of them (or of its hex digest) in an output is a leak, not chance.
pub const SECRETS: [&str; 6] = [
    "Zq9demoTokenAlpha7Hk2vX",
    "Wr4demoTokenBravo3Lm8pQ",
    "Jt6demoTokenCharlie5Nb",
    "Kp1demoTokenDelta0Xy4s",
    "Ve8demoTokenEcho2Rt6wM",
    "Bn3demoTokenFoxtrot9Qs",
];

pub const MAX_REPEAT: usize = 200_000;

pub fn secret(index: u8) -> &'static str {
    SECRETS
        .get(usize::from(index) % SECRETS.len())
        .copied()
        .unwrap_or_default()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes one escaped field; repeats take from `repeat_budget`.
pub fn unescape(text: &[u8], repeat_budget: &mut usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        i += 1;
        if b != b'\\' || i >= text.len() {
            out.push(b);
            continue;
        }
        let e = text[i];
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'x' => match (
                text.get(i).copied().and_then(hex_value),
                text.get(i + 1).copied().and_then(hex_value),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.extend_from_slice(b"\\x"),
            },
            b's' | b'h' => match text.get(i).filter(|d| d.is_ascii_digit()) {
                Some(d) => {
                    let s = secret(d - b'0');
                    if e == b's' {
                        out.extend_from_slice(s.as_bytes());
                    } else {
                        out.extend_from_slice(
                            crate::config_model::hex(&crate::config_model::sha256(s.as_bytes()))
                                .as_bytes(),
                        );
                    }
                    i += 1;
                }
                None => out.extend_from_slice(&[b'\\', e]),
            },
            b'{' => {
                let digits = text[i..].iter().take_while(|d| d.is_ascii_digit()).count();
                let close = i + digits;
                match (text.get(close), text.get(close + 1)) {
                    (Some(b'}'), Some(&c)) if digits > 0 && digits <= 6 => {
                        let n: usize = std::str::from_utf8(&text[i..close])
                            .ok()
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(0);
                        let n = n.min(*repeat_budget);
                        *repeat_budget -= n;
                        out.extend(std::iter::repeat_n(c, n));
                        i = close + 2;
                    }
                    _ => out.extend_from_slice(b"\\{"),
                }
            }
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    out
}

/// Splits an input into lines and each line at its first `": "` into an unescaped
/// (name, value); a line without `": "` is a name with an empty value.
pub fn pairs(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut budget = MAX_REPEAT;
    input
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            // Search from the second byte so that pseudo-headers (`:path: /x`) keep their colon.
            let at = line
                .get(1..)
                .and_then(|rest| rest.windows(2).position(|w| w == b": "))
                .map(|p| p + 1);
            match at {
                Some(at) => (
                    unescape(&line[..at], &mut budget),
                    unescape(&line[at + 2..], &mut budget),
                ),
                None => (unescape(line, &mut budget), Vec::new()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(text: &[u8]) -> Vec<u8> {
        unescape(text, &mut MAX_REPEAT.clone())
    }

    #[test]
    fn escapes_decode_to_any_byte() {
        assert_eq!(
            u(br"a\\b\n\r\t\0\x7f\xFF\q\x4"),
            b"a\\b\n\r\t\0\x7f\xff\\q\\x4".to_vec()
        );
        assert_eq!(u(br"\s0"), SECRETS[0].as_bytes());
        assert_eq!(u(br"\s7"), SECRETS[1].as_bytes());
        assert_eq!(u(br"\h1").len(), 64);
        assert_eq!(u(br"<\{70000}A>").len(), 70_002);
        assert_eq!(u(br"\{9999999}A"), b"\\{9999999}A".to_vec());
        assert_eq!(u(br"\{999999}A\{999999}B").len(), MAX_REPEAT);
        let many = b"a: \\{150000}x\nb: \\{150000}y\n";
        let total: usize = pairs(many).iter().map(|(_, v)| v.len()).sum();
        assert_eq!(total, MAX_REPEAT, "the budget is for the whole input");
        assert_eq!(u(br"\{3}"), b"\\{3}".to_vec());
        assert_eq!(u(b"\\"), b"\\".to_vec());
    }

    #[test]
    fn lines_split_at_the_first_colon_space() {
        assert_eq!(
            pairs(b":path: /a: b\nx-rfma-token: \\s0\n\nbare\nk:v"),
            vec![
                (b":path".to_vec(), b"/a: b".to_vec()),
                (b"x-rfma-token".to_vec(), SECRETS[0].as_bytes().to_vec()),
                (b"bare".to_vec(), Vec::new()),
                (b"k:v".to_vec(), Vec::new()),
            ]
        );
    }
}
