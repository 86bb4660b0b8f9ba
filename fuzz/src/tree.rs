//! A JSON tree that keeps object members in order, duplicates included, read with
//! `serde_json` (an independent parser from the filter's) and written back in several styles.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// Numbers keep their text (only their type matters to the configuration).
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    /// How many containers are nested at the deepest point (a scalar is 0).
    pub fn depth(&self) -> usize {
        match self {
            J::Arr(items) => 1 + items.iter().map(J::depth).max().unwrap_or(0),
            J::Obj(members) => 1 + members.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether any object in the tree has the same key twice.
    pub fn has_duplicate_keys(&self) -> bool {
        match self {
            J::Arr(items) => items.iter().any(J::has_duplicate_keys),
            J::Obj(members) => {
                let mut seen = std::collections::HashSet::new();
                members.iter().any(|(k, _)| !seen.insert(k.as_str()))
                    || members.iter().any(|(_, v)| v.has_duplicate_keys())
            }
            _ => false,
        }
    }

    /// Same shape and values, numbers compared by value class only (text may be re-spelt).
    pub fn same(&self, other: &J) -> bool {
        match (self, other) {
            (J::Num(_), J::Num(_)) => true,
            (J::Arr(a), J::Arr(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y)),
            (J::Obj(a), J::Obj(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
            }
            (a, b) => a == b,
        }
    }
}

/// Parses with `serde_json`, keeping every object member in document order.
pub fn parse(bytes: &[u8]) -> Result<J, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = de::Deserialize::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

impl<'de> de::Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J, E> {
        Ok(J::Num(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J, E> {
        Ok(J::Num(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J, E> {
        Ok(J::Num(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<J, E> {
        Ok(J::str(v))
    }
    fn visit_string<E>(self, v: String) -> Result<J, E> {
        Ok(J::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(J::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, J>()? {
            members.push((key, value));
        }
        Ok(J::Obj(members))
    }
}

/// How a tree is written out: the filter must read every legal spelling the same way.
#[derive(Debug, Clone, Copy, Default, arbitrary::Arbitrary)]
pub struct Style {
    /// Newlines and indentation between members.
    pub pretty: bool,
    /// Every non-ASCII character as `\uXXXX` (surrogate pairs above the BMP), `/` as `\/`.
    pub ascii_escapes: bool,
}

pub fn render(value: &J, style: Style) -> String {
    let mut out = String::new();
    write(&mut out, value, style, 0);
    out
}

fn indent(out: &mut String, style: Style, level: usize) {
    if style.pretty {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    }
}

fn write(out: &mut String, value: &J, style: Style, level: usize) {
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => write_str(out, s, style),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, style, level + 1);
                write(out, item, style, level + 1);
            }
            if !items.is_empty() {
                indent(out, style, level);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, style, level + 1);
                write_str(out, key, style);
                out.push_str(if style.pretty { ": " } else { ":" });
                write(out, item, style, level + 1);
            }
            if !members.is_empty() {
                indent(out, style, level);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str, style: Style) {
    if !style.ascii_escapes {
        // serde_json escapes exactly what JSON requires.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicates_and_order_and_round_trips_every_style() {
        let t = parse(br#"{"b":1,"a":[true,null,"x\u00e9\ud83d\ude00/"],"b":{}}"#).unwrap();
        assert!(t.has_duplicate_keys());
        assert_eq!(t.depth(), 2);
        for pretty in [false, true] {
            for ascii_escapes in [false, true] {
                let text = render(
                    &t,
                    Style {
                        pretty,
                        ascii_escapes,
                    },
                );
                assert!(parse(text.as_bytes()).unwrap().same(&t), "{text}");
                assert_eq!(ascii_escapes, text.is_ascii(), "{text}");
            }
        }
        assert!(
            !parse(br#"{"a":{"b":1},"b":{"a":2}}"#)
                .unwrap()
                .has_duplicate_keys()
        );
    }
}
