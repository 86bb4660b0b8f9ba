//! The pools a generated policy picks from: header names, principals, bypass prefixes and
//! methods, sinks, the validity windows' bounds, and the clock of a request that names none.

pub const HEADERS: &[&str] = &[
    "x-rfma-token",
    "X-Rfma-Token",
    "authorization",
    "x-api-key",
    "x-token",
];
pub const PRINCIPALS: &[&str] = &[
    "spiffe://cluster.local/ns/demo/sa/sleep",
    "spiffe://cluster.local/ns/demo/sa/other",
    "spiffe://cluster.local/ns/demo/sa/sleep/x",
    "spiffe://cluster.local/ns/demo/sa/\u{e9}",
];
pub const PREFIXES: &[&str] = &[
    "/status/",
    "/public",
    "/",
    "/healthz",
    "/a;b/",
    "/St%61tus/",
    "/.well-known/",
];
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "DELETE", "OPTIONS", "M-SEARCH", "X_Y",
];
pub const SINKS: &[&str] = &["filter_state", "none"];
/// Window bounds, valid RFC 3339 in several spellings; the model reads their instants with
/// its own parser ([`rfc3339`](crate::config_model::rfc3339)).
pub const STAMPS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2026-03-01T02:00:00+02:00",
    "2026-06-30T23:59:60Z",
    "2026-12-31T23:59:59.999999999Z",
    "2026-12-31T18:59:59-05:00",
    "1970-01-01T00:00:00Z",
    "2554-07-21T23:34:33.709551615Z",
    "2100-02-28t23:59:59.5z",
];
/// The clock of a request that names none: 2026-03-01T00:00:00Z.
pub const DEFAULT_NOW: u64 = 1_772_323_200_000_000_000;

pub(super) fn pick(pool: &[&'static str], index: u8) -> &'static str {
    pool.get(usize::from(index) % pool.len())
        .copied()
        .unwrap_or_default()
}
