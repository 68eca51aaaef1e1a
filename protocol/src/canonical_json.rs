//! The miners' canonical JSON: what field miners sign. A small JSON parser that keeps the distinction
//! Python makes between integers and floats, and an encoder that writes exactly what Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Deepest nesting accepted; deeper documents are refused rather than risking the stack.
pub const MAX_DEPTH: usize = 64;

/// A JSON value as Python's `json` module sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer literal, kept as its normalized decimal text (Python ints are unbounded).
    Int(String),
    /// A literal with a fraction or exponent: a Python float. Always finite.
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// Keys sorted by code point (Rust `String` order is UTF-8 byte order, which is code-point order).
    /// A repeated key keeps its last value, as Python's `json.loads` does.
    Object(BTreeMap<String, Value>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct ParseError {
    pub offset: usize,
    pub reason: &'static str,
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(key),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The value as a number, if it is one (integers beyond f64 precision round).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(s) => s.parse::<f64>().ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(s) => s.parse().ok(),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Canonical bytes of this value.
    pub fn to_canonical(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self);
        out
    }
}

/// Parse a JSON document (RFC 8259 plus nothing else: no NaN/Infinity, no trailing commas).
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> ParseError {
        ParseError { offset: self.i, reason }
    }
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }
    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut m = BTreeMap::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Value::Object(m));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected object key"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth + 1)?;
            m.insert(k, v);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Value::Object(m));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }
    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut a = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Value::Array(a));
        }
        loop {
            self.ws();
            a.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Value::Array(a));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }
    fn hex4(&mut self) -> Result<u32, ParseError> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        let h = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }
    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            let chunk = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError {
                offset: start,
                reason: "invalid UTF-8 in string",
            })?;
            out.push_str(chunk);
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let e = *self.s.get(self.i).ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("lone surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp).ok_or_else(|| self.err("lone surrogate"))?);
                        }
                        _ => return Err(self.err("unknown escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let neg = self.eat(b"-");
        let int_start = self.i;
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.s.get(self.i) {
                    self.i += 1;
                }
            }
            _ => return Err(self.err("bad number")),
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.eat(b".") {
            is_float = true;
            let d = self.i;
            while let Some(b'0'..=b'9') = self.s.get(self.i) {
                self.i += 1;
            }
            if d == self.i {
                return Err(self.err("bad fraction"));
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            is_float = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            let d = self.i;
            while let Some(b'0'..=b'9') = self.s.get(self.i) {
                self.i += 1;
            }
            if d == self.i {
                return Err(self.err("bad exponent"));
            }
        }
        // The slice is ASCII digits and signs only.
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
        if is_float {
            let f: f64 = text.parse().map_err(|_| self.err("bad number"))?;
            if !f.is_finite() {
                return Err(ParseError { offset: start, reason: "number out of range" });
            }
            Ok(Value::Float(f))
        } else {
            let digits = std::str::from_utf8(&self.s[int_start..int_end]).expect("ascii");
            if digits.len() > 4300 {
                // CPython refuses int literals above 4300 digits by default.
                return Err(ParseError { offset: start, reason: "integer too long" });
            }
            Ok(Value::Int(if neg && digits != "0" { format!("-{digits}") } else { digits.to_owned() }))
        }
    }
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(s) => out.push_str(s),
        Value::Float(f) => write_py_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, x);
            }
            out.push('}');
        }
    }
}

/// A string as Python writes it with `ensure_ascii=True`.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A finite float as Python's `repr` writes it: the shortest digits that round-trip; fixed notation
/// when the decimal exponent is in [-4, 16), with `.0` added to integers; otherwise `d[.ddd]e±XX`.
pub fn write_py_float(out: &mut String, f: f64) {
    debug_assert!(f.is_finite());
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').expect("LowerExp always has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if exp + 1 >= n {
            out.push_str(&digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// Python's `repr(float)` as a string.
pub fn py_float_repr(f: f64) -> String {
    let mut s = String::new();
    write_py_float(&mut s, f);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        parse(s.as_bytes()).unwrap().to_canonical()
    }

    #[test]
    fn python_float_repr_vector_v6b() {
        for (input, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-06, "1e-06"),
            (3e-06, "3e-06"),
            (123456.789, "123456.789"),
            (1e16, "1e+16"),
        ] {
            assert_eq!(py_float_repr(input), want);
        }
    }

    #[test]
    fn python_float_repr_edges() {
        for (input, want) in [
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1.5e-05, "1.5e-05"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.2345e16, "1.2345e+16"),
            (-0.0, "-0.0"),
            (-2.5, "-2.5"),
            (0.25, "0.25"),
            (100.0, "100.0"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(py_float_repr(input), want, "{input:e}");
        }
    }

    #[test]
    fn sorts_keys_at_every_level_and_strips_spaces() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": {"z": [1, 2.50, {"y": null, "x": true}], "c": "d"} }"#),
            r#"{"a":{"c":"d","z":[1,2.5,{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn ints_and_floats_keep_their_python_type() {
        assert_eq!(canon("[1, 1.0, -0, -0.0, 1E2, 10e-1, 12345678901234567890123]"),
                   "[1,1.0,0,-0.0,100.0,1.0,12345678901234567890123]");
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        assert_eq!(canon(r#""é\u00e9 \ud83d\ude00 \u007f\/""#), r#""\u00e9\u00e9 \ud83d\ude00 \u007f/""#);
        assert_eq!(canon("\"tab\\tnl\\n\\u0001\""), "\"tab\\tnl\\n\\u0001\"");
        assert_eq!(canon("\"😀\""), "\"\\ud83d\\ude00\"");
    }

    #[test]
    fn duplicate_keys_keep_the_last() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "NaN", "Infinity", "1e400", "01", "\"\\ud800\"", "\"a", "tru",
                    "{} x", "\"\u{1}\"", "-", "1.", "1e"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} should fail");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(&[b'"', 0xff, b'"']).is_err());
    }

    #[test]
    fn transfer_message_vector_v6() {
        let m = r#"{"to":"RTCabababababababababababababababababababab","nonce":"1700000000","memo":"hi","from":"RTC56475aa75463474c0285df5dbf2bcab73da65135","fee":0.0,"amount":0.25}"#;
        assert_eq!(canon(m), "{\"amount\":0.25,\"fee\":0.0,\"from\":\"RTC56475aa75463474c0285df5dbf2bcab73da65135\",\"memo\":\"hi\",\"nonce\":\"1700000000\",\"to\":\"RTCabababababababababababababababababababab\"}");
    }

    proptest::proptest! {
        #[test]
        fn float_repr_round_trips(bits in proptest::prelude::any::<u64>()) {
            let f = f64::from_bits(bits);
            proptest::prop_assume!(f.is_finite());
            let s = py_float_repr(f);
            let back: f64 = s.parse().unwrap();
            proptest::prop_assert_eq!(back.to_bits(), f.to_bits());
            proptest::prop_assert!(s.contains('.') || s.contains('e'));
            // Canonical form is a fixed point: parsing and re-encoding changes nothing.
            proptest::prop_assert_eq!(parse(s.as_bytes()).unwrap().to_canonical(), s);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn canonical_is_idempotent(s in "[ -~]{0,64}") {
            if let Ok(v) = parse(s.as_bytes()) {
                let c = v.to_canonical();
                proptest::prop_assert_eq!(parse(c.as_bytes()).unwrap().to_canonical(), c);
            }
        }
    }
}
