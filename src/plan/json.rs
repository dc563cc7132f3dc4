//! A small strict JSON parser (RFC 8259) for plans and status documents.
//!
//! Strict: one value with optional white space around it, no trailing commas, no comments,
//! no duplicate object keys (a plan with two `sourceImage`s is ambiguous), strings are
//! valid UTF-8 with no raw control characters and only the escapes the RFC lists, lone
//! surrogates rejected. Bounded: input size and nesting depth are capped, so a hostile
//! server cannot make PID 1 recurse or allocate without limit. Numbers keep only the value
//! of the whole ones plans use, without floating point.

use alloc::string::String;
use alloc::vec::Vec;

/// Largest document accepted (a plan is a few hundred bytes; `files` may carry more).
pub const MAX_INPUT: usize = 1 << 20;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number (checked against the RFC's grammar): its value when it is a whole number
    /// from 0 to 2^64-1 (the only numbers plans use), else None.
    Number(Option<u64>),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// What kind of value this is, for error messages ("expected a string, found an array").
    pub fn kind(&self) -> &'static str {
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

/// Why a document is not JSON, and where (byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    pub at: usize,
    pub what: &'static str,
}

/// Parses one JSON document.
pub fn parse(input: &[u8]) -> Result<Value, JsonError> {
    if input.len() > MAX_INPUT {
        return Err(JsonError { at: MAX_INPUT, what: "document larger than 1 MiB" });
    }
    let text = core::str::from_utf8(input)
        .map_err(|e| JsonError { at: e.valid_up_to(), what: "not UTF-8" })?;
    let mut p = Parser { s: text.as_bytes(), pos: 0 };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.error("unexpected data after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> JsonError {
        JsonError { at: self.pos, what }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Steps over `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn word(&mut self, word: &[u8], value: Value) -> Result<Value, JsonError> {
        if !self.s.get(self.pos..).unwrap_or_default().starts_with(word) {
            return Err(self.error("unknown literal (expected true, false or null)"));
        }
        self.pos += word.len();
        Ok(value)
    }

    /// A value after optional white space.
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("unexpected end of document")),
            Some(b'{') => self.collection(true, depth + 1),
            Some(b'[') => self.collection(false, depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.word(b"true", Value::Bool(true)),
            Some(b'f') => self.word(b"false", Value::Bool(false)),
            Some(b'n') => self.word(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    /// An object (members with unique keys) or an array, from its opening bracket.
    fn collection(&mut self, object: bool, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested deeper than 32 levels"));
        }
        self.pos += 1;
        let (close, expected) =
            if object { (b'}', "expected ',' or '}'") } else { (b']', "expected ',' or ']'") };
        let (mut members, mut items) = (Vec::new(), Vec::new());
        self.skip_ws();
        let mut more = !self.eat(close);
        while more {
            if object {
                self.skip_ws();
                let key_at = self.pos;
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(JsonError { at: key_at, what: "duplicate key" });
                }
                self.skip_ws();
                if !self.eat(b':') {
                    return Err(self.error("expected ':' after the key"));
                }
                members.push((key, self.value(depth)?));
            } else {
                items.push(self.value(depth)?);
            }
            self.skip_ws();
            more = !self.eat(close);
            if more && !self.eat(b',') {
                return Err(self.error(expected));
            }
        }
        Ok(if object { Value::Object(members) } else { Value::Array(items) })
    }

    /// number = [ minus ] int [ frac ] [ exp ], int = zero / ( digit1-9 *DIGIT )
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        self.eat(b'-');
        if !self.eat(b'0') {
            self.digits()?;
        }
        if self.eat(b'.') {
            self.digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            self.digits()?;
        }
        let text = self.s.get(start..self.pos).unwrap_or_default();
        Ok(Value::Number(crate::http::response::parse_length(text)))
    }

    /// One or more digits.
    fn digits(&mut self) -> Result<(), JsonError> {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err(self.error("expected a digit"));
        }
        self.pos += n;
        Ok(())
    }

    /// A string, from its opening quote: its bytes gathered, escapes decoded into them,
    /// and made a String once (which cannot fail: the input is UTF-8 and an escape gives
    /// a whole character).
    fn string(&mut self) -> Result<String, JsonError> {
        let mut out = Vec::new();
        loop {
            self.pos += 1; // the opening quote, a plain byte or an escape's last byte
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(0..0x20) => return Err(self.error("control character in a string")),
                Some(b'\\') => self.escape(&mut out)?,
                Some(b) => out.push(b),
            }
        }
        self.pos += 1;
        Ok(String::from_utf8(out).unwrap_or_default())
    }

    /// At a backslash: the escaped character into `out`, the cursor left on the escape's
    /// last byte; after `\u`, four hex digits, and for a high surrogate the `\uXXXX` low
    /// one.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        self.pos += 1;
        let next = self.peek();
        let mut simple = b"\"\\/bfnrt".iter().zip(b"\"\\/\x08\x0c\n\r\t");
        if let Some((_, &c)) = simple.find(|e| Some(*e.0) == next) {
            out.push(c);
            return Ok(());
        } else if next != Some(b'u') {
            return Err(self.error("invalid escape"));
        }
        let mut code = self.hex4()?;
        let rest = self.s.get(self.pos + 1..).unwrap_or_default();
        if (0xD800..0xDC00).contains(&code) && rest.starts_with(b"\\u") {
            self.pos += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
        }
        // Only a surrogate left alone is no character.
        let lone =
            if code < 0xDC00 { "high surrogate without a low one" } else { "lone low surrogate" };
        let c = char::from_u32(code).ok_or(self.error(lone))?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    /// At a `u`: the four hex digits after it, the cursor left on the last.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        self.pos += 1;
        let digits =
            self.s.get(self.pos..self.pos + 4).ok_or(self.error("truncated \\u escape"))?;
        let v = digits.iter().try_fold(0, |v, &d| Some(v * 16 + (d as char).to_digit(16)?));
        let v = v.ok_or(self.error("bad hex digit in \\u escape"))?;
        self.pos += 3;
        Ok(v)
    }
}

#[cfg(test)]
impl Value {
    /// The value of an object's member `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => *n,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ok(s: &str) -> Value {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {} at {}", e.what, e.at))
    }

    fn err(s: &[u8]) -> JsonError {
        parse(s).expect_err(&std::format!("{:?} should be rejected", String::from_utf8_lossy(s)))
    }

    #[test]
    fn rfc8259_examples() {
        // RFC 8259 section 13, first example (abridged in depth, not in kinds).
        let v = ok(r#"{
          "Image": {
              "Width":  800, "Height": 600, "Title":  "View from 15th Floor",
              "Thumbnail": { "Url": "http://www.example.com/image/481989943", "Height": 125, "Width":  100 },
              "Animated" : false,
              "IDs": [116, 943, 234, 38793]
          }
        }"#);
        let image = v.get("Image").unwrap();
        assert_eq!(image.get("Width").unwrap().as_u64(), Some(800));
        assert_eq!(image.get("Animated"), Some(&Value::Bool(false)));
        assert_eq!(
            image.get("IDs"),
            Some(&Value::Array(vec![
                Value::Number(Some(116)),
                Value::Number(Some(943)),
                Value::Number(Some(234)),
                Value::Number(Some(38793))
            ]))
        );
        // Second example: an array of objects with fractional numbers.
        let v = ok(r#"[{"Latitude": 37.7668, "Longitude": -122.3959, "Zip": "94107"}]"#);
        let Value::Array(items) = v else { panic!() };
        assert_eq!(items[0].get("Longitude"), Some(&Value::Number(None)));
        // Scalars are documents too.
        assert_eq!(ok(" \"Hello world!\" "), Value::String("Hello world!".into()));
        assert_eq!(ok("42"), Value::Number(Some(42)));
        assert_eq!(ok("true"), Value::Bool(true));
        assert_eq!(ok("null"), Value::Null);
    }

    #[test]
    fn escapes_and_surrogates() {
        assert_eq!(
            ok(r#""a\"b\\c\/d\b\f\n\r\t""#),
            Value::String("a\"b\\c/d\u{8}\u{c}\n\r\t".into())
        );
        assert_eq!(ok(r#""\u00e9\u20AC""#), Value::String("é€".into()));
        assert_eq!(ok(r#""\ud83d\ude00""#), Value::String("😀".into()));
        assert_eq!(ok("\"raw é 😀\""), Value::String("raw é 😀".into()));
        assert_eq!(err(br#""\ud83d""#).what, "high surrogate without a low one");
        assert_eq!(err(br#""\ud83d\u0041""#).what, "high surrogate without a low one");
        assert_eq!(err(br#""\ude00""#).what, "lone low surrogate");
        assert_eq!(err(br#""\x""#).what, "invalid escape");
        assert_eq!(err(br#""\u12G4""#).what, "bad hex digit in \\u escape");
        assert_eq!(err(br#""\u12"#).what, "truncated \\u escape");
        assert_eq!(err(b"\"tab\there\"").what, "control character in a string");
        assert_eq!(err(b"\"open").what, "unterminated string");
        assert_eq!(err(b"\"\xff\"").what, "not UTF-8");
    }

    #[test]
    fn numbers_follow_the_grammar() {
        for good in
            ["0", "-0", "1.5", "-12.25e+3", "1E5", "0.0e-0", "123456789012345678901234567890"]
        {
            assert!(matches!(ok(good), Value::Number(_)), "{good}");
        }
        for bad in ["01", "-", "1.", ".5", "1e", "+1", "0x10", "1.e3", "-a"] {
            parse(bad.as_bytes()).expect_err(bad);
        }
        assert_eq!(ok("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(ok("18446744073709551616").as_u64(), None, "overflow is not a u64");
        assert_eq!(ok("123456789012345678901234567890").as_u64(), None);
        assert_eq!(ok("-1").as_u64(), None);
        assert_eq!(ok("1.0").as_u64(), None);
        assert_eq!(ok("1e3").as_u64(), None);
    }

    #[test]
    fn structure_errors() {
        assert_eq!(err(b"").what, "unexpected end of document");
        assert_eq!(err(b"   ").what, "unexpected end of document");
        assert_eq!(err(b"[1,]").what, "unexpected character");
        assert_eq!(err(b"{\"a\":1,}").what, "expected a string key");
        assert_eq!(err(b"{\"a\" 1}").what, "expected ':' after the key");
        assert_eq!(err(b"{\"a\":1 \"b\":2}").what, "expected ',' or '}'");
        assert_eq!(err(b"[1 2]").what, "expected ',' or ']'");
        assert_eq!(err(b"{'a':1}").what, "expected a string key");
        assert_eq!(err(b"{} {}").what, "unexpected data after the value");
        assert_eq!(err(b"tru").what, "unknown literal (expected true, false or null)");
        assert_eq!(err(b"// c\n{}").what, "unexpected character");
        let dup = err(b"{\"a\":1,\"a\":2}");
        assert_eq!((dup.what, dup.at), ("duplicate key", 7));
        // Truncation anywhere is an error, never a partial value.
        let doc = br#"{"action":"writeImage","list":[1,2,{"x":"y"}],"n":-1.5e3}"#;
        for cut in 0..doc.len() {
            parse(&doc[..cut]).expect_err("a truncated document must not parse");
        }
        assert!(parse(doc).is_ok());
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep_ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep_ok.as_bytes()).is_ok());
        let too_deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(err(too_deep.as_bytes()).what, "nested deeper than 32 levels");
        // A hostile server sending a million brackets costs nothing but an error.
        let hostile = "[".repeat(100_000);
        assert_eq!(err(hostile.as_bytes()).what, "nested deeper than 32 levels");
        let huge = alloc::vec![b' '; MAX_INPUT + 1];
        assert_eq!(err(&huge).what, "document larger than 1 MiB");
    }

    #[test]
    fn errors_are_one_line_with_the_offset() {
        let e = crate::plan::parse(b"[1,x]").unwrap_err();
        assert_eq!(e, "plan: invalid JSON at byte 3: unexpected character");
    }

    #[test]
    fn mutated_documents_never_panic() {
        // A deterministic mutation sweep (the fuzz target runs the same idea far longer).
        let seed = br#"{"action":"writeImage","sourceImage":"http://10.0.0.1/i.gz","n":[1,-2.5e3,true,null,"\u00e9"]}"#;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut doc = seed.to_vec();
            for _ in 0..(state % 4 + 1) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % doc.len();
                match state >> 60 {
                    0..=7 => doc[at] = (state >> 32) as u8,
                    8..=11 => {
                        doc.remove(at);
                    }
                    _ => doc.insert(at, b"{}[]\",:\\"[(state >> 40) as usize % 8]),
                }
            }
            let _ = parse(&doc);
        }
    }
}
