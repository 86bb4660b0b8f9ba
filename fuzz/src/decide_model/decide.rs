//! The model of the request contract: what the host answers when the gate asks (the peer,
//! the clock), what the gate must decide, and what it must look up on the way.

use super::headers::{ambiguous, first};
use super::policy::{PolicySpec, instant};
use crate::config_model::sha256;
use std::collections::HashMap;

/// What the host says when the gate asks for the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Nanoseconds since 1970 UTC.
    At(u64),
    /// The host call fails.
    Fails,
}

/// What the gate had to look up for a request, and the configured token it matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lookups {
    pub peer: bool,
    pub clock: bool,
    /// The token whose digest matched the presented one, whatever came of it.
    pub matched: Option<usize>,
}

/// What the host says when the gate asks for the peer's URI SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (or no URI SAN).
    Absent,
    Uri(Vec<u8>),
    /// The host call fails.
    LookupFails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Bypass,
    /// Allowed with this index into the policy's tokens.
    Allow(usize),
    /// Denied with this reason code.
    Deny(&'static str),
}

/// The model: what the gate must decide. `lookups` says what the gate must look up (the peer
/// only for a matched token bound to principals, the clock only for a matched token with a
/// window, the window first) and which token matched.
pub fn decide(
    policy: &PolicySpec,
    headers: &[(Vec<u8>, Vec<u8>)],
    map_damaged: bool,
    peer: &Peer,
    clock: Clock,
    lookups: &mut Lookups,
) -> Expected {
    *lookups = Lookups::default();
    if map_damaged {
        // The gate could not see every header, so it cannot tell a duplicate: fail closed.
        return Expected::Deny("internal_error");
    }
    let method = first(headers, ":method").unwrap_or(b"");
    let target = first(headers, ":path").unwrap_or(b"");
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let path = &target[..path_end];
    let bypassed = !ambiguous(path)
        && policy.bypass.iter().any(|(prefix, methods)| {
            path.starts_with(prefix.as_bytes())
                && (methods.is_empty() || methods.iter().any(|m| m.as_bytes() == method))
        });
    if bypassed {
        return Expected::Bypass;
    }

    let wanted = policy.header.to_ascii_lowercase();
    let values: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase() == wanted.as_bytes())
        .map(|(_, v)| v.as_slice())
        .collect();
    let token = match values.as_slice() {
        [] => return Expected::Deny("missing_token"),
        [one] => one.trim_ascii(),
        _ => return Expected::Deny("duplicate_token"),
    };
    if token.is_empty() {
        return Expected::Deny("missing_token");
    }

    let allowlist: HashMap<[u8; 32], usize> = policy
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (sha256(t.secret.as_bytes()), i))
        .collect();
    let Some(&index) = allowlist.get(&sha256(token)) else {
        return Expected::Deny("invalid_token");
    };
    lookups.matched = Some(index);
    let spec = &policy.tokens[index];
    if spec.not_before.is_some() || spec.not_after.is_some() {
        lookups.clock = true;
        let Clock::At(now) = clock else {
            return Expected::Deny("internal_error");
        };
        // Both bounds are instants the token is still valid at.
        if spec.not_after.is_some_and(|last| now > instant(last)) {
            return Expected::Deny("expired_token");
        }
        if spec.not_before.is_some_and(|first| now < instant(first)) {
            return Expected::Deny("token_not_yet_valid");
        }
    }
    let bound = &spec.principals;
    if bound.is_empty() {
        return Expected::Allow(index);
    }
    lookups.peer = true;
    match peer {
        Peer::LookupFails => Expected::Deny("internal_error"),
        Peer::Uri(uri) if bound.iter().any(|p| p.as_bytes() == uri.as_slice()) => {
            Expected::Allow(index)
        }
        _ => Expected::Deny("principal_mismatch"),
    }
}
