//! The configuration's shape, as serde's derive reads it: which fields exist, which are
//! required, and the kind of each. An unknown field is an error (`deny_unknown_fields`): a
//! misspelt field must not be silently ignored. The fields are declared in the order the
//! "unknown field" error lists them. What a value must look like beyond its kind (hex digits,
//! names, timestamps, duplicates) is checked afterwards, in [`super::rules`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub header: Option<String>,
    pub realm: Option<String>,
    pub tokens: Vec<Token>,
    pub bypass: Option<Vec<Bypass>>,
    pub strip_header: Option<bool>,
    pub log: Option<Log>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub sha256: Option<String>,
    pub value: Option<String>,
    pub principals: Option<Vec<String>>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bypass {
    pub path_prefix: String,
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub sink: Option<String>,
    pub allowed: Option<bool>,
    pub denied: Option<bool>,
}
