//! Where a request is decided: plain data in, a [`Decision`] out, no host calls.
//!
//! [`decide`] here is the order of the checks; `decision.rs` is what it answers (the reasons,
//! their codes and statuses), `bypass.rs` the bypass rules and the path checks behind them.

mod bypass;
mod decision;

pub use bypass::{safe_to_bypass, split_path};
pub use decision::{Decision, Reason, Verdict};

use crate::config::Policy;
use crate::digest;
use bypass::bypasses;

/// What the gate needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The `:path` pseudo-header as received (it may carry a query).
    pub path: &'a [u8],
}

/// Decides a request.
///
/// `token_values` yields the value of every token header, in order. Once the presented token
/// has matched a configured digest (a constant-time scan over all of them), its validity
/// window is checked, then its principals:
///
/// - `now_ns` is called at most once, only when the matched token has a `not_before` or a
///   `not_after`; it returns the proxy's clock in nanoseconds since 1970, or `Err` when the
///   host could not be asked (a deny). Both bounds are inclusive. The window comes first: an
///   expired token is expired whoever sends it, and the clock costs the proxy less than the
///   peer's certificate.
/// - `peer_principal` is called at most once, only when the matched token is bound to
///   principals; it returns the caller's certificate URI SAN, or `Err` when the host could not
///   be asked (a deny).
pub fn decide<'v, E>(
    policy: &Policy,
    request: Request<'_>,
    token_values: impl IntoIterator<Item = &'v [u8]>,
    peer_principal: impl FnOnce() -> Result<Option<String>, E>,
    now_ns: impl FnOnce() -> Result<u64, E>,
) -> Verdict {
    if bypasses(policy, request) {
        return Verdict::unmatched(Decision::Bypass);
    }
    let mut values = token_values.into_iter();
    let Some(value) = values.next() else {
        return Verdict::unmatched(Decision::Deny(Reason::MissingToken));
    };
    if values.next().is_some() {
        return Verdict::unmatched(Decision::Deny(Reason::DuplicateToken));
    }
    let token = value.trim_ascii();
    if token.is_empty() {
        return Verdict::unmatched(Decision::Deny(Reason::MissingToken));
    }
    let Some(index) = digest::find_constant_time(&policy.digests, &digest::sha256(token)) else {
        return Verdict::unmatched(Decision::Deny(Reason::InvalidToken));
    };
    let Some(rule) = policy.tokens.get(index) else {
        return Verdict::unmatched(Decision::Deny(Reason::InternalError));
    };
    let deny = |reason| Verdict::matched(index, Decision::Deny(reason));
    if rule.has_window() {
        let Ok(now) = now_ns() else {
            return deny(Reason::InternalError);
        };
        if rule.not_after.is_some_and(|last| now > last) {
            return deny(Reason::ExpiredToken);
        }
        if rule.not_before.is_some_and(|first| now < first) {
            return deny(Reason::TokenNotYetValid);
        }
    }
    if !rule.principals.is_empty() {
        match peer_principal() {
            Err(_) => return deny(Reason::InternalError),
            Ok(Some(peer)) if rule.principals.contains(&peer) => {}
            Ok(_) => return deny(Reason::PrincipalMismatch),
        }
    }
    Verdict::matched(index, Decision::Allow { token: index })
}

#[cfg(test)]
mod tests;
