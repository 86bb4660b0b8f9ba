//! What the gate answers: the decision, the deny reasons with their codes and statuses (part of
//! the public contract), and the verdict that also names the matched token.

/// Why a request was denied. The codes and statuses are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MissingToken,
    DuplicateToken,
    InvalidToken,
    PrincipalMismatch,
    InternalError,
    /// A configured token, used after its `not_after`.
    ExpiredToken,
    /// A configured token, used before its `not_before`.
    TokenNotYetValid,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::MissingToken,
        Reason::DuplicateToken,
        Reason::InvalidToken,
        Reason::PrincipalMismatch,
        Reason::InternalError,
        Reason::ExpiredToken,
        Reason::TokenNotYetValid,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::DuplicateToken => "duplicate_token",
            Reason::InvalidToken => "invalid_token",
            Reason::PrincipalMismatch => "principal_mismatch",
            Reason::InternalError => "internal_error",
            Reason::ExpiredToken => "expired_token",
            Reason::TokenNotYetValid => "token_not_yet_valid",
        }
    }

    /// Envoy's response code details for the deny reply (`%RESPONSE_CODE_DETAILS%`).
    pub fn details(self) -> &'static str {
        match self {
            Reason::MissingToken => "rfma_missing_token",
            Reason::DuplicateToken => "rfma_duplicate_token",
            Reason::InvalidToken => "rfma_invalid_token",
            Reason::PrincipalMismatch => "rfma_principal_mismatch",
            Reason::InternalError => "rfma_internal_error",
            Reason::ExpiredToken => "rfma_expired_token",
            Reason::TokenNotYetValid => "rfma_token_not_yet_valid",
        }
    }

    pub fn status(self) -> u32 {
        match self {
            Reason::MissingToken | Reason::ExpiredToken | Reason::TokenNotYetValid => 401,
            Reason::DuplicateToken => 400,
            Reason::InvalidToken | Reason::PrincipalMismatch => 403,
            Reason::InternalError => 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A bypass rule matched; no token was needed.
    Bypass,
    /// The token at this index of [`Policy::tokens`](crate::config::Policy::tokens) was
    /// presented (and its principals matched).
    Allow {
        token: usize,
    },
    Deny(Reason),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        !matches!(self, Decision::Deny(_))
    }

    pub fn code(self) -> &'static str {
        match self {
            Decision::Bypass => "bypass",
            Decision::Allow { .. } => "allow",
            Decision::Deny(_) => "deny",
        }
    }
}

/// A decision, and the configured token the presented one matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// The index in [`Policy::tokens`](crate::config::Policy::tokens) of the token whose digest
    /// matched, whatever came of it (allowed, or denied for its window, its principals or an
    /// error after the match); `None` when no token matched (bypass, missing, duplicate,
    /// invalid).
    pub token: Option<usize>,
}

impl Verdict {
    pub(super) fn unmatched(decision: Decision) -> Self {
        Verdict {
            decision,
            token: None,
        }
    }

    pub(super) fn matched(token: usize, decision: Decision) -> Self {
        Verdict {
            decision,
            token: Some(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn reasons_map_to_the_contract_statuses() {
        let table: Vec<_> = Reason::ALL.iter().map(|r| (r.code(), r.status())).collect();
        assert_eq!(
            table,
            vec![
                ("missing_token", 401),
                ("duplicate_token", 400),
                ("invalid_token", 403),
                ("principal_mismatch", 403),
                ("internal_error", 500),
                ("expired_token", 401),
                ("token_not_yet_valid", 401)
            ]
        );
        for reason in Reason::ALL {
            assert_eq!(reason.details(), format!("rfma_{}", reason.code()));
        }
    }
}
