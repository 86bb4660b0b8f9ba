//! Test hosts for the compiled filter.
