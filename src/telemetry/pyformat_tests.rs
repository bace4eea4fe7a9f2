//! Tests for the %-format engine: fixed expectations, then a differential run against the
//! embedded CPython so every conversion, flag, width and error text is checked against the
//! real thing.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::pyformat::{parse, py_repr, render, Piece, Value};

fn values() -> HashMap<&'static str, Value<'static>> {
    let s = |v: &'static str| Value::Str(Cow::Borrowed(v));
    HashMap::from([
        ("a", s("x")),
        ("s", s("str")),
        ("q", s("it's")),
        ("q2", s("it's \"q\"")),
        ("u", s("é\u{1}\u{2028}\u{7f}\u{a0}\\\t\n")),
        ("one", s("A")),
        ("n", Value::Int(65)),
        ("zero", Value::Int(0)),
        ("big", Value::Int(1_234_567)),
        ("huge", Value::Int(98_765_432_101_234)),
        ("max", Value::Int(0x10ffff)),
        ("over", Value::Int(0x110000)),
        ("none", Value::None),
        ("a(b)c", s("nested")),
    ])
}

/// Our rendering of `format`, or the Python-style error text.
fn ours(format: &str) -> Result<String, String> {
    let vals = values();
    let pieces = parse(format, |k| k.to_owned())?;
    let mut out = String::new();
    for piece in &pieces {
        match piece {
            Piece::Literal(t) => out.push_str(t),
            Piece::Field(key, conv) => {
                let v = vals.get(key.as_str()).expect("test formats use known keys");
                render(conv, v, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// CPython's `format % dict`, or `"ExcType: message"`.
fn python(py: Python<'_>, format: &str) -> Result<String, String> {
    let d = PyDict::new(py);
    for (k, v) in values() {
        match v {
            Value::Str(s) => d.set_item(k, s.as_ref()).unwrap(),
            Value::Int(n) => d.set_item(k, n).unwrap(),
            Value::None => d.set_item(k, py.None()).unwrap(),
        }
    }
    let fmt = pyo3::types::PyString::new(py, format);
    match fmt.rem(&d) {
        Ok(r) => Ok(r.extract::<String>().unwrap()),
        Err(e) => Err(format!(
            "{}: {}",
            e.get_type(py).name().unwrap(),
            e.value(py).str().unwrap()
        )),
    }
}

#[test]
fn fixed_expectations() {
    assert_eq!(ours("%(a)s %% %(n)d").unwrap(), "x % 65");
    assert_eq!(ours("%(a)-5s|%(a)5s|").unwrap(), "x    |    x|");
    assert_eq!(ours("%(s).2s").unwrap(), "st");
    assert_eq!(
        ours("%(n)05d %(n)x %(n)#X %(n)o").unwrap(),
        "00065 41 0X41 101"
    );
    assert_eq!(ours("%(none)s").unwrap(), "None");
    assert_eq!(
        ours("%(s)d").unwrap_err(),
        "TypeError: %d format: a real number is required, not str"
    );
    assert_eq!(ours("%(a)").unwrap_err(), "ValueError: incomplete format");
    assert_eq!(
        ours("%(a").unwrap_err(),
        "ValueError: incomplete format key"
    );
    assert_eq!(
        ours("ab %(a)z").unwrap_err(),
        "ValueError: unsupported format character 'z' (0x7a) at index 7"
    );
    assert!(ours("%s")
        .unwrap_err()
        .contains("unnamed format specifier at index 0"));
    assert!(ours("x %d").unwrap_err().contains("at index 2"));
    assert_eq!(ours("no fields").unwrap(), "no fields");
}

#[test]
fn repr_matches_python_quoting() {
    assert_eq!(py_repr("str", false), "'str'");
    assert_eq!(py_repr("it's", false), "\"it's\"");
    assert_eq!(py_repr("it's \"q\"", false), "'it\\'s \"q\"'");
    assert_eq!(py_repr("é\u{1}", false), "'é\\x01'");
    assert_eq!(py_repr("é\u{1F600}", true), "'\\xe9\\U0001f600'");
}

#[test]
fn differential_against_cpython() {
    let formats = [
        "%(a)s",
        "%(a)5.2s",
        "%(a)ls",
        "%(a)hs",
        "%(a)Ls",
        "%(n)i",
        "%(n)u",
        "%(s)d",
        "%(s)i",
        "%(s)x",
        "%(s)o",
        "%(s)f",
        "%(s)e",
        "%(s)g",
        "%(s)c",
        "%(n)c",
        "%(max)c",
        "%(over)c",
        "%(one)c",
        "%(none)d",
        "%(none)x",
        "%(none)f",
        "%(none)c",
        "%(none)r",
        "%(none)5s|",
        "%(n)#o",
        "%(n)#010x",
        "%(n)+05d",
        "%(n)-+8d|",
        "%(n)08.3f",
        "%(n)g",
        "%(big)g",
        "%(big)#g",
        "%(huge)g",
        "%(huge)e",
        "%(huge).3E",
        "%(huge)f",
        "%(huge).12g",
        "%(n)e",
        "%(n).0e",
        "%(n)#.0e",
        "%(n)#.0f",
        "%(n).0f",
        "%(zero)e",
        "%(zero)g",
        "%(zero)#g",
        "%(zero)f",
        "%(zero).0g",
        "%(s)r",
        "%(q)r",
        "%(q2)r",
        "%(u)a",
        "%(u)r",
        "%(n) d",
        "%(n) +d",
        "%(s)05s",
        "%(s)-05s|",
        "%(s).1s",
        "%(s).0s|",
        "%(n).3d",
        "%(n)#.3x",
        "%(n).0d",
        "%(zero).0d",
        "%(big).3g",
        "%(big).1g",
        "%(big).7g",
        "%(big).8g",
        "%(n)%",
        "abc",
        "%(a)s%",
        "% (a)s",
        "%-(a)s",
        "%(a).s",
        "%(a)5.s|",
        "%(a).*s",
        "%(a)*s",
        "%(a)10.3r|",
        "%(n)5c|",
        "%(n)-5c|",
        "%(n)05c",
        "%(n)#X",
        "%(n)#5o",
        "%(n)#-8x|",
        "%(n)G",
        "%(n)08.3d",
        "%(n)-08d|",
        "%(n)#08o",
        "%(n)+.3d",
        "%(n)012.4e",
        "%(n)-12.4e|",
        "%(n)+g",
        "%(big)015.2f",
        "%(a(b)c)s",
        "%(n)ld",
        "%(a)s %% %(n)d%%",
        "%%(a)s",
        "%(a)",
        "%(a",
        "%(a)z",
        "%(a)\u{e9}",
        "%(a)\u{1}",
        "%(u)10s|",
        "%(u)-10.3s|",
        "%(n)5%",
        "%(n)#5d",
        "%(s)#s",
        "%(n)'d",
        "%(big),d",
    ];
    Python::attach(|py| {
        let mismatches: Vec<String> = formats
            .iter()
            .filter_map(|format| {
                let (a, b) = (ours(format), python(py, format));
                (a != b).then(|| format!("{format:?}: ours {a:?} python {b:?}"))
            })
            .collect();
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            999_999,
            1_000_000,
            123_456_789,
            u32::MAX as u64,
        ] {
            for conv in [
                "g", "#g", ".3g", ".10g", "e", ".2e", "f", ".1f", "x", "o", "d",
            ] {
                let format = format!("%(v){conv}");
                let pieces = parse(&format, |_| ()).unwrap();
                let Piece::Field((), c) = &pieces[0] else {
                    unreachable!()
                };
                let mut mine = String::new();
                render(c, &Value::Int(n), &mut mine).unwrap();
                let d = PyDict::new(py);
                d.set_item("v", n).unwrap();
                let theirs: String = pyo3::types::PyString::new(py, &format)
                    .rem(&d)
                    .unwrap()
                    .extract()
                    .unwrap();
                assert_eq!(mine, theirs, "format {format:?} with {n}");
            }
        }
    });
}
