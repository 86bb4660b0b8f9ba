//! The bypass rules: which requests pass with no token, and the path checks that keep a bypass
//! prefix from matching a path the upstream could read as another.

use super::Request;
use crate::config::Policy;

/// Splits a request target into path and query (a fragment, which clients should never
/// send, is dropped with the query).
pub fn split_path(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let end = target
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(target.len());
    let target = target.get(..end).unwrap_or(target);
    match target.iter().position(|&b| b == b'?') {
        Some(q) => (
            target.get(..q).unwrap_or(target),
            target.get(q.saturating_add(1)..),
        ),
        None => (target, None),
    }
}

pub(super) fn bypasses(policy: &Policy, request: Request<'_>) -> bool {
    if policy.bypass.is_empty() {
        return false;
    }
    let (path, _) = split_path(request.path);
    if !safe_to_bypass(path) {
        return false;
    }
    policy.bypass.iter().any(|rule| {
        path.starts_with(rule.path_prefix.as_bytes())
            && (rule.methods.is_empty()
                || rule.methods.iter().any(|m| m.as_bytes() == request.method))
    })
}

/// A path is only compared with bypass prefixes when no normalisation by the upstream could
/// make it mean a different path: no dot-segments (also with `;` parameters, which some
/// servers strip), no backslash, no percent-encoded `.`, `/` or `\`, and no encoded `%`
/// (`%252e` is an encoded dot to an upstream that decodes twice).
pub fn safe_to_bypass(path: &[u8]) -> bool {
    if path.contains(&b'\\') {
        return false;
    }
    let encoded = path.windows(3).any(|w| {
        matches!(
            w,
            [b'%', b'2', b'e' | b'E' | b'f' | b'F' | b'5'] | [b'%', b'5', b'c' | b'C']
        )
    });
    if encoded {
        return false;
    }
    !path.split(|&b| b == b'/').any(|segment| {
        let name = segment.split(|&b| b == b';').next().unwrap_or(segment);
        name == b"." || name == b".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn each_form_that_could_normalise_is_refused_on_its_own() {
        // Under the bypass prefix, so only the form itself can be what refuses each path.
        for path in [
            "/status/../admin",
            "/status/./x",
            "/status/..;/admin",
            "/status/%2e%2e/a",
            "/status/%2Fa",
            "/status/%2fa",
            "/status/%5c",
            "/status/%5C",
            "/status/\\a",
            "/status/%252e",
        ] {
            assert!(!safe_to_bypass(path.as_bytes()), "{path}");
        }
        for path in ["/status/200", "/status/a..b/.well", "/status/%41", "/"] {
            assert!(safe_to_bypass(path.as_bytes()), "{path}");
        }
    }

    #[test]
    fn splits_query_and_drops_fragments() {
        assert_eq!(
            split_path(b"/a/b?x=1&y"),
            (b"/a/b".as_slice(), Some(b"x=1&y".as_slice()))
        );
        assert_eq!(split_path(b"/a?"), (b"/a".as_slice(), Some(b"".as_slice())));
        assert_eq!(split_path(b"/a#frag?x"), (b"/a".as_slice(), None));
        assert_eq!(
            split_path(b"/a?q#f"),
            (b"/a".as_slice(), Some(b"q".as_slice()))
        );
    }
}
