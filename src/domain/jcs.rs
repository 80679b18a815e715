//! JSON Canonicalization Scheme (RFC 8785): the one byte string a JSON value signs as,
//! whatever whitespace, key order or escapes the document travelled with.

use serde_json::Value;

/// Parses a document to be verified. A document holding one member name twice in an
/// object is refused (`None`), as the I-JSON that JCS requires forbids it: a parser
/// keeps the last value and the signature checks, while a viewer may show the first.
pub fn parse_strict(text: &str) -> Option<Value> {
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Unique)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                if !seen.insert(name) {
                    return Err(A::Error::custom("a member name appears twice"));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    Unique.deserialize(&mut de).ok()?;
    de.end().ok()?;
    serde_json::from_str(text).ok()
}

/// The canonical form of `value`: no whitespace, object members sorted by the UTF-16
/// code units of their names, strings with the minimal escapes, numbers as ECMAScript
/// prints them.
pub fn canonicalize(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            // RFC 8785 §3.2.3 orders by UTF-16 code units, which differs from Rust's
            // byte order only for characters beyond the Basic Multilingual Plane.
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, name);
                out.push(':');
                write(out, member);
            }
            out.push('}');
        }
    }
}

/// A string with exactly the escapes RFC 8785 §3.2.2.2 allows: `\"`, `\\`, the short
/// forms of five control characters and `\u00xx` (lowercase) for the rest below U+0020.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as ECMAScript's `Number.prototype.toString` prints it (RFC 8785 §3.2.2.3).
fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= 1 << 53 {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u <= 1 << 53 {
            return u.to_string();
        }
    }
    let x = n.as_f64().unwrap_or(0.0);
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust prints the shortest round-tripping digits in positional notation, as
        // ECMAScript does in this range.
        format!("{x}")
    } else {
        // Outside it ECMAScript switches to exponent form with an explicit sign.
        let e = format!("{x:e}");
        match e.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_naming_a_member_twice_is_refused() {
        assert!(parse_strict(r#"{"a":1,"b":{"c":[1,{"d":2}]}}"#).is_some());
        assert!(parse_strict(r#"{"a":1,"a":2}"#).is_none());
        assert!(parse_strict(r#"{"b":[{"c":1,"c":1}]}"#).is_none());
        assert!(parse_strict("not json").is_none());
        assert!(parse_strict(r#"{"a":1} trailing"#).is_none());
    }
    use serde_json::json;

    #[test]
    fn members_are_sorted_and_whitespace_dropped() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2], "a": {"d": null, "c": true} }"#).unwrap();
        assert_eq!(canonicalize(&v), r#"{"a":{"c":true,"d":null},"b":[1,2]}"#);
    }

    #[test]
    fn strings_keep_unicode_and_escape_only_what_they_must() {
        let v = json!({"名称": "威海\u{1}\n\"x\"/€"});
        assert_eq!(canonicalize(&v), "{\"名称\":\"威海\\u0001\\n\\\"x\\\"/€\"}");
    }

    #[test]
    fn keys_order_by_utf16_code_units() {
        // U+1F600 is a surrogate pair (0xD83D…), which sorts before U+FB33 in UTF-16
        // although its UTF-8 bytes sort after.
        let v = json!({"\u{fb33}": 1, "\u{1f600}": 2});
        assert_eq!(canonicalize(&v), "{\"\u{1f600}\":2,\"\u{fb33}\":1}");
    }

    #[test]
    fn numbers_print_as_ecmascript_does() {
        // Built from f64 literals: serde_json's default parser may round the last digit.
        let v = json!([1.0, -0.0, 1e21, 1e-7, 0.000001, 123.456, 4.5e300, 10]);
        assert_eq!(
            canonicalize(&v),
            "[1,0,1e+21,1e-7,0.000001,123.456,4.5e+300,10]"
        );
    }
}
