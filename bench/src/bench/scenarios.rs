//! Which requests a scenario sends (allowed, denied, bypass; HTTP/1.1 or h2c).

use crate::load::Protocol;

/// Which requests a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Every request carries a configured token.
    Allowed,
    /// Every request carries a wrong token.
    Denied,
    /// Every request hits the filter's bypass rule (`GET /status/…`) and carries no token.
    Bypass,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub key: &'static str,
    pub protocol: Protocol,
    pub mix: Mix,
}

pub const SCENARIOS: [Scenario; 5] = [
    Scenario {
        key: "h1-allowed",
        protocol: Protocol::Http1,
        mix: Mix::Allowed,
    },
    Scenario {
        key: "h1-denied",
        protocol: Protocol::Http1,
        mix: Mix::Denied,
    },
    Scenario {
        key: "h2-allowed",
        protocol: Protocol::Http2,
        mix: Mix::Allowed,
    },
    Scenario {
        key: "h2-denied",
        protocol: Protocol::Http2,
        mix: Mix::Denied,
    },
    Scenario {
        key: "h1-bypass",
        protocol: Protocol::Http1,
        mix: Mix::Bypass,
    },
];

pub fn scenario(key: &str) -> Result<Scenario, String> {
    SCENARIOS
        .iter()
        .copied()
        .find(|s| s.key == key)
        .ok_or_else(|| {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.key).collect();
            format!("unknown scenario {key:?}; known: {}", known.join(", "))
        })
}
