//! A small, strict JSON reader for the plugin configuration.
//!
//! The configuration is parsed once per `on_configure`, so speed does not matter here, but
//! module size does: this reader is a fraction of the size of `serde_json` and keeps object
//! members in document order, which lets configuration errors name fields precisely.
//! It rejects what RFC 8259 rejects, plus duplicate object keys and nesting deeper than
//! [`MAX_DEPTH`] (so hostile input cannot exhaust the stack).

use std::fmt;

/// Deeper nesting than any valid configuration needs.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text as written: the configuration has no numeric fields, so numbers are
    /// only checked for syntax (and converting them would pull float parsing into the module).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the input.
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Parses one JSON document; surrounding whitespace is allowed, anything else is an error.
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    let mut reader = Reader { input, pos: 0 };
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.pos < input.len() {
        return Err(reader.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, message: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        Some(byte)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos = self.pos.saturating_add(1);
        }
    }

    fn expect_literal(
        &mut self,
        literal: &'static [u8],
        value: Value,
    ) -> Result<Value, ParseError> {
        let end = self.pos.saturating_add(literal.len());
        if self.input.get(self.pos..end) == Some(literal) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            Err(self.error("nesting too deep"))
        } else {
            Ok(depth.saturating_add(1))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        let depth = self.enter(depth)?;
        self.pos = self.pos.saturating_add(1); // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos = self.pos.saturating_add(1);
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key_offset = self.pos;
            let key = self.string()?;
            if members.iter().any(|(existing, _)| *existing == key) {
                return Err(ParseError {
                    offset: key_offset,
                    message: "duplicate object key",
                });
            }
            self.skip_whitespace();
            if self.next() != Some(b':') {
                return Err(self.error("expected ':' after an object key"));
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(Value::Object(members)),
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        let depth = self.enter(depth)?;
        self.pos = self.pos.saturating_add(1); // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos = self.pos.saturating_add(1);
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(Value::Array(items)),
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos = self.pos.saturating_add(1);
        }
        match self.peek() {
            Some(b'0') => self.pos = self.pos.saturating_add(1),
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos = self.pos.saturating_add(1);
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos = self.pos.saturating_add(1);
            if let Some(b'+' | b'-') = self.peek() {
                self.pos = self.pos.saturating_add(1);
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        let text = self
            .input
            .get(start..self.pos)
            .and_then(|bytes| std::str::from_utf8(bytes).ok());
        text.map(|t| Value::Number(t.to_owned())).ok_or(ParseError {
            offset: start,
            message: "invalid number",
        })
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos = self.pos.saturating_add(1);
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos = self.pos.saturating_add(1); // '"'
        let mut out: Vec<u8> = Vec::new();
        loop {
            let byte = self
                .next()
                .ok_or_else(|| self.error("unterminated string"))?;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0x00..=0x1f => return Err(self.error("control character in a string")),
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in a string"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let byte = self
            .next()
            .ok_or_else(|| self.error("unterminated string"))?;
        let simple = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("invalid escape in a string")),
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut value: u32 = 0;
        for _ in 0..4 {
            let digit = self
                .next()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            value = (value << 4) | digit;
        }
        Ok(value)
    }

    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err(self.error("unpaired surrogate in \\u escape"));
            }
            // Both halves were range-checked above, so this cannot overflow. An addition, not
            // an OR: the high half's bits reach bit 16 from U+20000 on (found by fuzzing).
            0x10000u32.saturating_add(((first & 0x3ff) << 10) | (second & 0x3ff))
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("unpaired surrogate in \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_documents_in_order() {
        let v = parse(br#" {"b": [1, -2.5e3, true, false, null], "a": {"x": "y"}} "#).unwrap();
        let Value::Object(members) = v else {
            panic!("not an object")
        };
        assert_eq!(members[0].0, "b");
        assert_eq!(
            members[0].1,
            Value::Array(vec![
                Value::Number("1".into()),
                Value::Number("-2.5e3".into()),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null
            ])
        );
        assert_eq!(members[1].0, "a");
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        let v = parse(br#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(v, Value::String("a\"\\/\u{8}\u{c}\n\r\té😀".to_owned()));
    }

    #[test]
    fn decodes_surrogate_pairs_across_the_whole_astral_range() {
        for c in [
            '\u{10000}',
            '\u{1f600}',
            '\u{20000}',
            '\u{afbef}',
            '\u{10ffff}',
        ] {
            let mut units = [0u16; 2];
            let escaped: String = c
                .encode_utf16(&mut units)
                .iter()
                .map(|u| format!("\\u{u:04x}"))
                .collect();
            let v = parse(format!("\"{escaped}\"").as_bytes()).unwrap();
            assert_eq!(v, Value::String(c.to_string()), "{escaped}");
        }
    }

    #[test]
    fn rejects_malformed_input_with_an_offset() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "unexpected end of input"),
            (b"{", "expected a string key"),
            (b"{\"a\":1,}", "expected a string key"),
            (b"[1,]", "unexpected character"),
            (b"{\"a\" 1}", "expected ':' after an object key"),
            (b"01", "unexpected data after the JSON value"),
            (b"1.", "invalid number"),
            (b"-", "invalid number"),
            (b"\"abc", "unterminated string"),
            (b"\"a\x01\"", "control character in a string"),
            (b"\"\\x\"", "invalid escape in a string"),
            (b"\"\\ud800\"", "unpaired surrogate in \\u escape"),
            (b"\"\xff\"", "invalid UTF-8 in a string"),
            (b"tru", "invalid literal"),
            (b"{\"a\":1,\"a\":2}", "duplicate object key"),
            (b"{} {}", "unexpected data after the JSON value"),
        ];
        for (input, message) in cases {
            let err = parse(input).unwrap_err();
            assert_eq!(
                err.message,
                *message,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_nesting_depth() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err().message,
            "nesting too deep"
        );
    }
}
