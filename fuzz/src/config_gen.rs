//! Structured plugin configurations generated with `arbitrary`: mostly well-formed JSON with
//! the contract's fields, each of which may be missing, of the wrong type, or subtly wrong,
//! so the fuzzer spends its time in the validation code instead of on JSON syntax errors.

use crate::config_model::{hex, sha256};
use crate::tree::J;
use arbitrary::Arbitrary;

/// Every plain-text token value the generator writes contains this character, and nothing
/// else it writes does: an error message containing it would be leaking a token.
pub const SECRET_MARK: char = '\u{24c8}';

/// Token values the generator knows (so `sha256` entries can collide with `value` entries).
pub const VALUES: [&str; 4] = [
    "\u{24c8}test1",
    "\u{24c8}demo-token",
    "\u{24c8}x",
    "\u{24c8} y z",
];

fn pick<'a>(pool: &[&'a str], index: u8) -> &'a str {
    pool.get(usize::from(index) % pool.len())
        .copied()
        .unwrap_or_default()
}

/// Removes the secret marker from text that is not a token value.
fn clean(s: &str) -> String {
    s.replace(SECRET_MARK, "")
}

#[derive(Debug, Arbitrary)]
pub enum Field<T> {
    Absent,
    Good(T),
    Junk(Junk),
}

/// A value of some JSON type, usually the wrong one for the field it lands in.
#[derive(Debug, Arbitrary)]
pub enum Junk {
    Null,
    Bool(bool),
    Int(i32),
    Float,
    Text(String),
    EmptyArray,
    EmptyObject,
    Strings(Vec<String>),
}

impl Junk {
    fn tree(&self) -> J {
        match self {
            Junk::Null => J::Null,
            Junk::Bool(b) => J::Bool(*b),
            Junk::Int(i) => J::Num(i.to_string()),
            Junk::Float => J::Num("-1.5e3".into()),
            Junk::Text(s) => J::Str(clean(s)),
            Junk::EmptyArray => J::Arr(Vec::new()),
            Junk::EmptyObject => J::Obj(Vec::new()),
            Junk::Strings(items) => J::Arr(items.iter().map(|s| J::Str(clean(s))).collect()),
        }
    }
}

/// Text from a pool of interesting values, or anything.
#[derive(Debug, Arbitrary)]
pub enum Text {
    Pool(u8),
    Raw(String),
}

impl Text {
    fn get(&self, pool: &[&str]) -> String {
        match self {
            Text::Pool(i) => pick(pool, *i).to_owned(),
            Text::Raw(s) => clean(s),
        }
    }
}

const KEYS: &[&str] = &[
    "extra",
    "nmae",
    "method",
    "level",
    "Tokens",
    "header",
    "tokens",
    "name",
    "value",
    "sha256",
    "principals",
    "path_prefix",
    "methods",
    "sink",
    "allowed",
    "denied",
    "log",
    "bypass",
    "realm",
    "not_before",
    "not_after",
];
const HEADERS: &[&str] = &[
    "x-rfma-token",
    "X-RFMA-Token",
    "authorization",
    "x-api-key",
    "",
    ":path",
    "x token",
    "x-\u{e9}",
    "a!#$%&'*+-.^_`|~0",
    "X-Request-Id",
    "user-agent",
    "traceparent",
    "x-b3-traceid",
];
const NAMES: &[&str] = &[
    "sleep", "legacy", "a", "t-1.x_y", "A", "", "sleep ", "n\u{e9}",
];
const PRINCIPALS: &[&str] = &[
    "spiffe://cluster.local/ns/demo/sa/sleep",
    "spiffe://cluster.local/ns/demo/sa/other",
    "spiffe://",
    "cluster.local/ns/demo/sa/sleep",
    "SPIFFE://a",
    "spiffe://a b",
    "spiffe://a\t",
    "spiffe://a\u{85}",
];
const PREFIXES: &[&str] = &[
    "/status/", "/", "/public", "status/", "/a?b", "/a#b", "/a b", "/a\u{7f}", "/\u{1}", "",
    "/%2e/", "/\u{e9}",
];
const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "M-SEARCH",
    "X_Y",
    "get",
    "PO ST",
    "",
    "GET\u{0}",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG",
];
/// Realms: valid ones at the edges (1 and 64 characters, a space, every printable sign but the
/// two excluded), and the ways to be wrong (empty, 65 characters, `"`, `\`, control, non-ASCII).
const REALMS: &[&str] = &[
    "istio-demo",
    "r",
    "payments api",
    "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    "0123456789012345678901234567890123456789012345678901234567890123",
    "01234567890123456789012345678901234567890123456789012345678901234",
    "",
    "a\"b",
    "a\\b",
    "tab\there",
    "caf\u{e9}",
    "\u{7f}",
];
/// Window bounds: the same instants written several ways (offsets, `-00:00`, lower case,
/// fractions, a leap second), the clock's limits and just past them, and near misses.
const STAMPS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2026-01-01T02:00:00+02:00",
    "2025-12-31T19:00:00-05:00",
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00:00-00:00",
    "2026-01-01T00:00:00.000000001Z",
    "2026-12-31T23:59:59.999999999Z",
    "2026-12-31T23:59:59.9999999999Z",
    "2016-12-31T23:59:60Z",
    "2017-01-01T00:59:60+01:00",
    "2024-02-29T12:00:00Z",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999999Z",
    "2554-07-21T23:34:33.709551615Z",
    "2554-07-21T23:34:33.709551616Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-02-29T00:00:00Z",
    "2026-12-31T23:59:59",
    "2026-12-31 23:59:59Z",
    "2026-12-31T23:59:60Z",
    "2026-12-31T24:00:00Z",
    "2026-12-31T23:59:59+2:00",
    "2026-12-31T23:59:59.Z",
    "2026-12-31",
    "",
];

/// The two valid sinks, the two removed ones (rejected with their own message) and others.
const SINKS: &[&str] = &[
    "filter_state",
    "proxy_log",
    "both",
    "none",
    "stdout",
    "FILTER_STATE",
    "",
];

#[derive(Debug, Arbitrary)]
pub enum Pad {
    None,
    Space,
    Tab,
    NoBreakSpace,
    LineFeed,
    VerticalTab,
}

impl Pad {
    fn text(&self) -> &'static str {
        match self {
            Pad::None => "",
            Pad::Space => " ",
            Pad::Tab => "\t",
            Pad::NoBreakSpace => "\u{a0}",
            Pad::LineFeed => "\n",
            Pad::VerticalTab => "\u{b}",
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum Value {
    Known(u8),
    Padded(Pad, u8, Pad),
    Empty,
    Raw(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Known(i) => pick(&VALUES, *i).to_owned(),
            Value::Padded(l, i, r) => format!("{}{}{}", l.text(), pick(&VALUES, *i), r.text()),
            Value::Empty => String::new(),
            Value::Raw(s) => format!("{SECRET_MARK}{}", clean(s)),
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum Sha {
    /// The digest of one of [`VALUES`], in lower or upper case.
    OfKnown(u8, bool),
    /// A digest with one character changed to something that is not a hex digit.
    Broken(u8, u8),
    /// 63 or 65 digits.
    WrongLength(bool),
    Raw(String),
}

impl Sha {
    fn text(&self) -> String {
        let of = |i: u8| hex(&sha256(pick(&VALUES, i).as_bytes()));
        match self {
            Sha::OfKnown(i, upper) if *upper => of(*i).to_uppercase(),
            Sha::OfKnown(i, _) => of(*i),
            Sha::Broken(i, at) => {
                let mut chars: Vec<char> = of(*i).chars().collect();
                if let Some(c) = chars.get_mut(usize::from(*at) % 64) {
                    *c = 'g';
                }
                chars.into_iter().collect()
            }
            Sha::WrongLength(long) => {
                let full = of(0);
                if *long {
                    format!("{full}0")
                } else {
                    full[..63].to_owned()
                }
            }
            Sha::Raw(s) => clean(s),
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum Secret {
    Sha(Sha),
    Value(Value),
    Both(Sha, Value),
    Neither,
    ShaJunk(Junk),
    ValueJunk(Junk),
}

#[derive(Debug, Arbitrary)]
pub enum Principal {
    Text(Text),
    Junk(Junk),
}

#[derive(Debug, Arbitrary)]
pub struct Token {
    pub not_an_object: Option<Junk>,
    pub name: Field<Text>,
    pub secret: Secret,
    pub principals: Field<Vec<Principal>>,
    pub extra: Option<(Text, Junk)>,
    pub not_before: Field<Text>,
    pub not_after: Field<Text>,
}

#[derive(Debug, Arbitrary)]
pub enum Method {
    Text(Text),
    Junk(Junk),
}

#[derive(Debug, Arbitrary)]
pub struct Bypass {
    pub not_an_object: Option<Junk>,
    pub path_prefix: Field<Text>,
    pub methods: Field<Vec<Method>>,
    pub extra: Option<(Text, Junk)>,
}

#[derive(Debug, Arbitrary)]
pub struct Log {
    pub sink: Field<Text>,
    pub allowed: Field<bool>,
    pub denied: Field<bool>,
    pub extra: Option<(Text, Junk)>,
}

#[derive(Debug, Arbitrary)]
pub struct Config {
    pub header: Field<Text>,
    pub tokens: Field<Vec<Token>>,
    /// Valid entries appended to `tokens`: 0x4c1d fills the list to exactly 1024 entries
    /// (the limit), 0x4c1e to 1025; any other n adds n % 4. (Rare values on purpose: a
    /// thousand entries make an input a hundred times slower.)
    pub filler_tokens: u16,
    pub bypass: Field<Vec<Bypass>>,
    pub strip_header: Field<bool>,
    pub log: Field<Log>,
    pub extra: Option<(Text, Junk)>,
    /// Rotates the order of the top-level members.
    pub rotate: u8,
    pub realm: Field<Text>,
}

fn member<T>(out: &mut Vec<(String, J)>, key: &str, field: &Field<T>, good: impl Fn(&T) -> J) {
    match field {
        Field::Absent => {}
        Field::Good(v) => out.push((key.to_owned(), good(v))),
        Field::Junk(j) => out.push((key.to_owned(), j.tree())),
    }
}

fn extra(out: &mut Vec<(String, J)>, extra: &Option<(Text, Junk)>) {
    if let Some((key, junk)) = extra {
        out.push((key.get(KEYS), junk.tree()));
    }
}

impl Token {
    fn tree(&self) -> J {
        if let Some(junk) = &self.not_an_object {
            return junk.tree();
        }
        let mut m = Vec::new();
        member(&mut m, "name", &self.name, |t| J::Str(t.get(NAMES)));
        match &self.secret {
            Secret::Sha(s) => m.push(("sha256".into(), J::Str(s.text()))),
            Secret::Value(v) => m.push(("value".into(), J::Str(v.text()))),
            Secret::Both(s, v) => {
                m.push(("value".into(), J::Str(v.text())));
                m.push(("sha256".into(), J::Str(s.text())));
            }
            Secret::Neither => {}
            Secret::ShaJunk(j) => m.push(("sha256".into(), j.tree())),
            Secret::ValueJunk(j) => m.push(("value".into(), j.tree())),
        }
        member(&mut m, "principals", &self.principals, |list| {
            J::Arr(
                list.iter()
                    .map(|p| match p {
                        Principal::Text(t) => J::Str(t.get(PRINCIPALS)),
                        Principal::Junk(j) => j.tree(),
                    })
                    .collect(),
            )
        });
        member(&mut m, "not_before", &self.not_before, |t| {
            J::Str(t.get(STAMPS))
        });
        member(&mut m, "not_after", &self.not_after, |t| {
            J::Str(t.get(STAMPS))
        });
        extra(&mut m, &self.extra);
        J::Obj(m)
    }
}

impl Bypass {
    fn tree(&self) -> J {
        if let Some(junk) = &self.not_an_object {
            return junk.tree();
        }
        let mut m = Vec::new();
        member(&mut m, "path_prefix", &self.path_prefix, |t| {
            J::Str(t.get(PREFIXES))
        });
        member(&mut m, "methods", &self.methods, |list| {
            J::Arr(
                list.iter()
                    .map(|x| match x {
                        Method::Text(t) => J::Str(t.get(METHODS)),
                        Method::Junk(j) => j.tree(),
                    })
                    .collect(),
            )
        });
        extra(&mut m, &self.extra);
        J::Obj(m)
    }
}

impl Config {
    pub fn tree(&self) -> J {
        let mut m = Vec::new();
        member(&mut m, "header", &self.header, |t| J::Str(t.get(HEADERS)));
        member(&mut m, "realm", &self.realm, |t| J::Str(t.get(REALMS)));
        member(&mut m, "tokens", &self.tokens, |list| {
            let mut entries: Vec<J> = list.iter().map(Token::tree).collect();
            let filler = match self.filler_tokens {
                0x4c1d => 1024usize.saturating_sub(entries.len()),
                0x4c1e => 1025usize.saturating_sub(entries.len()),
                n => usize::from(n % 4),
            };
            entries.extend((0..filler).map(|i| {
                J::Obj(vec![
                    ("name".into(), J::Str(format!("f{i}"))),
                    ("value".into(), J::Str(format!("{SECRET_MARK}f{i}"))),
                ])
            }));
            J::Arr(entries)
        });
        member(&mut m, "bypass", &self.bypass, |list| {
            J::Arr(list.iter().map(Bypass::tree).collect())
        });
        member(&mut m, "strip_header", &self.strip_header, |b| J::Bool(*b));
        member(&mut m, "log", &self.log, |log| {
            let mut l = Vec::new();
            member(&mut l, "sink", &log.sink, |t| J::Str(t.get(SINKS)));
            member(&mut l, "allowed", &log.allowed, |b| J::Bool(*b));
            member(&mut l, "denied", &log.denied, |b| J::Bool(*b));
            extra(&mut l, &log.extra);
            J::Obj(l)
        });
        extra(&mut m, &self.extra);
        if !m.is_empty() {
            let by = usize::from(self.rotate) % m.len();
            m.rotate_left(by);
        }
        J::Obj(m)
    }
}
