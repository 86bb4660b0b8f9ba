//! The configuration as a JSON document: `serde_json` reads the text into a [`Tree`], serde's
//! derive reads the shapes in [`super::shape`] out of it, and `serde_path_to_error` names the
//! field of any error (`tokens[1].sha256`).
//!
//! Why a tree of our own between the two, rather than `serde_json::Value` or reading the text
//! straight into the shapes:
//! - the errors are this crate's words ("expected a string, got a number"): the tree is read
//!   through a deserializer whose error type is ours, so serde hands us the unknown or missing
//!   field and the expected kind instead of a finished sentence with a line and column;
//! - a duplicate key is an error wherever it is (`Value` keeps the last one silently), and so
//!   is nesting deeper than [`MAX_DEPTH`]: both name the whole `configuration`, as before;
//! - members stay in document order whatever features cargo unifies into `serde_json` for
//!   other crates of the workspace (`preserve_order`), so the CLI, which runs this parser
//!   natively, names the same field as the module.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use std::fmt;

/// Deeper nesting than any valid configuration needs (the deepest is four containers: the
/// document, `tokens`, an entry, its `principals`).
pub const MAX_DEPTH: usize = 16;

/// A JSON value as read, object members in document order and their keys unique.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Null,
    Bool(bool),
    /// The configuration has no numeric fields: a number is only ever the wrong kind.
    Number,
    String(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    /// The JSON kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Tree::Null => "null",
            Tree::Bool(_) => "a boolean",
            Tree::Number => "a number",
            Tree::String(_) => "a string",
            Tree::Array(_) => "an array",
            Tree::Object(_) => "an object",
        }
    }
}

/// Reads one JSON document (surrounding whitespace allowed). The error is `serde_json`'s,
/// with its line and column.
pub fn read(bytes: &[u8]) -> Result<Tree, serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let tree = Level(0).deserialize(&mut reader)?;
    reader.end()?;
    Ok(tree)
}

/// Reads one value at the given nesting depth.
#[derive(Clone, Copy)]
struct Level(usize);

impl Level {
    fn enter<E: de::Error>(self) -> Result<Level, E> {
        if self.0 >= MAX_DEPTH {
            Err(E::custom("nesting too deep"))
        } else {
            Ok(Level(self.0.saturating_add(1)))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Tree;

    fn deserialize<D: de::Deserializer<'de>>(self, reader: D) -> Result<Tree, D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Number)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Number)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Number)
    }

    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let inner = self.enter()?;
        let mut members: Vec<(String, Tree)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(seen, _)| *seen == key) {
                return Err(de::Error::custom("duplicate object key"));
            }
            let value = map.next_value_seed(inner)?;
            members.push((key, value));
        }
        Ok(Tree::Object(members))
    }
}

/// What is wrong with a value of the tree, in this crate's words; the path comes from
/// `serde_path_to_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrong {
    pub message: String,
    /// A field of the object the error is about, not yet in the path: the missing one.
    pub member: Option<&'static str>,
}

impl fmt::Display for Wrong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Wrong {}

impl de::Error for Wrong {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Wrong {
            message: message.to_string(),
            member: None,
        }
    }

    /// The key is already the last segment of the path (`serde_path_to_error` keeps the key
    /// it was reading), so only the list is said here.
    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        Wrong {
            message: format!("unknown field (expected one of: {})", expected.join(", ")),
            member: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Wrong {
            message: "required".to_owned(),
            member: Some(field),
        }
    }
}

/// A value of the tree as serde's input. Each `deserialize_*` the shapes call checks the
/// value's kind itself, so a wrong kind reads "expected <what>, got <kind>".
#[derive(Debug, Clone, Copy)]
pub struct Node<'a>(pub &'a Tree);

impl Node<'_> {
    fn wrong(self, expected: &str) -> Wrong {
        de::Error::custom(format!("expected {expected}, got {}", self.0.kind()))
    }
}

impl<'de> IntoDeserializer<'de, Wrong> for Node<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = Wrong;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        match self.0 {
            Tree::Null => visitor.visit_unit(),
            Tree::Bool(b) => visitor.visit_bool(*b),
            // No shape reads a number, nor anything through `deserialize_any`: say what it is.
            Tree::Number => Err(self.wrong("no number")),
            Tree::String(s) => visitor.visit_borrowed_str(s),
            Tree::Array(_) => self.deserialize_seq(visitor),
            Tree::Object(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        match self.0 {
            Tree::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.wrong("true or false")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        match self.0 {
            Tree::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.wrong("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        self.deserialize_str(visitor)
    }

    /// A member given as `null` is a value of the wrong kind, not a member left out: only a
    /// missing member is `None` (serde's derive handles that case itself).
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        let Tree::Array(items) = self.0 else {
            return Err(self.wrong("an array"));
        };
        let mut seq = SeqDeserializer::new(items.iter().map(Node));
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Wrong> {
        let Tree::Object(members) = self.0 else {
            return Err(self.wrong("an object"));
        };
        let mut map = MapDeserializer::new(members.iter().map(|(k, v)| (k.as_str(), Node(v))));
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    /// Only an object: serde's derive would also take an array of the fields in order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Wrong> {
        self.deserialize_map(visitor)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn reads_nested_documents_in_order() {
        let tree = read(br#" {"b": [1, -2.5e3, true, false, null], "a": {"x": "y"}} "#).unwrap();
        assert_eq!(
            tree,
            Tree::Object(vec![
                (
                    "b".into(),
                    Tree::Array(vec![
                        Tree::Number,
                        Tree::Number,
                        Tree::Bool(true),
                        Tree::Bool(false),
                        Tree::Null
                    ])
                ),
                (
                    "a".into(),
                    Tree::Object(vec![("x".into(), Tree::String("y".into()))])
                ),
            ])
        );
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        for text in [r#"{"a":1,"a":2}"#, r#"{"x":[{"k":1,"j":2,"k":3}]}"#] {
            let e = read(text.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("duplicate object key at line 1"), "{e}");
        }
    }

    #[test]
    fn limits_nesting_depth() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(read(ok.as_bytes()).is_ok());
        let deep = "[".repeat(100_000);
        let e = read(deep.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, "nesting too deep at line 1 column 17");
    }

    #[test]
    fn rejects_trailing_data() {
        assert!(read(b"{} {}").is_err());
        assert!(read(b" {}\n").is_ok());
    }
}
