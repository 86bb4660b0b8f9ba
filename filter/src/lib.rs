//! rfma token-gate filter (being written).
