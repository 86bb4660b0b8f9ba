//! The deny response and the counters: the parts of the contract a client or a dashboard sees.

use crate::gate::{Decision, Reason};
use crate::record::push_string;

/// The JSON body of a deny: `{"error":"<reason>","request_id":"<x-request-id or empty>"}`.
/// It never carries the token or its digest: it is built from the reason code and the ID.
pub fn deny_body(reason: Reason, request_id: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(b"{\"error\":\"");
    body.extend_from_slice(reason.code().as_bytes());
    body.extend_from_slice(b"\",\"request_id\":");
    push_string(&mut body, request_id.unwrap_or_default());
    body.push(b'}');
    body
}

/// Counter names, in the order of [`counter_index`].
pub const COUNTERS: [&str; 7] = [
    "rfma_allowed_total",
    "rfma_bypassed_total",
    "rfma_denied_missing_token_total",
    "rfma_denied_invalid_token_total",
    "rfma_denied_duplicate_token_total",
    "rfma_denied_principal_mismatch_total",
    "rfma_denied_internal_error_total",
];

/// Which counter a decision increments.
pub fn counter_index(decision: Decision) -> usize {
    match decision {
        Decision::Allow { .. } => 0,
        Decision::Bypass => 1,
        Decision::Deny(Reason::MissingToken) => 2,
        Decision::Deny(Reason::InvalidToken) => 3,
        Decision::Deny(Reason::DuplicateToken) => 4,
        Decision::Deny(Reason::PrincipalMismatch) => 5,
        Decision::Deny(Reason::InternalError) => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_bodies_carry_only_reason_and_request_id() {
        assert_eq!(
            deny_body(Reason::InvalidToken, Some(b"abc-123")),
            br#"{"error":"invalid_token","request_id":"abc-123"}"#
        );
        assert_eq!(
            deny_body(Reason::MissingToken, None),
            br#"{"error":"missing_token","request_id":""}"#
        );
        assert_eq!(
            deny_body(Reason::InternalError, Some(b"a\"b")),
            br#"{"error":"internal_error","request_id":"a\"b"}"#
        );
    }

    #[test]
    fn each_decision_has_its_own_counter() {
        let decisions = [
            Decision::Allow { token: 3 },
            Decision::Bypass,
            Decision::Deny(Reason::MissingToken),
            Decision::Deny(Reason::InvalidToken),
            Decision::Deny(Reason::DuplicateToken),
            Decision::Deny(Reason::PrincipalMismatch),
            Decision::Deny(Reason::InternalError),
        ];
        let names: Vec<&str> = decisions
            .iter()
            .map(|d| COUNTERS[counter_index(*d)])
            .collect();
        assert_eq!(names, COUNTERS.to_vec());
        for reason in Reason::ALL {
            assert_eq!(
                COUNTERS[counter_index(Decision::Deny(reason))],
                format!("rfma_denied_{}_total", reason.code())
            );
        }
    }
}
