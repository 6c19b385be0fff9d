use std::cell::Cell;

use super::*;
use crate::openapi::doc;

/// The value made for `#/components/schemas/T` of a document holding
/// `schemas`, written as template text (`write::json` style is not
/// needed: the samples are compared as values).
fn value_of(schemas: &str) -> Result<Sample, SchemaError> {
    let root = doc::read(&format!(
        r##"{{"start": {{"$ref": "#/components/schemas/T"}}, "components": {{"schemas": {schemas}}}}}"##
    ))
    .unwrap();
    let budget = Cell::new(1_000_000);
    let mut walker = Walker::new(&root, &budget);
    let schema = root.get("start").unwrap();
    walker.value(schema, Purpose::Request, 0, None)
}

fn text(s: &Sample) -> String {
    match s {
        Sample::Text(t) => t.template(),
        other => panic!("not text: {other:?}"),
    }
}

fn field<'a>(s: &'a Sample, name: &str) -> Option<&'a Sample> {
    match s {
        Sample::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

#[test]
fn formats_become_values_that_vary() {
    for (format, expected) in [
        ("uuid", "{{ uuid() }}"),
        ("date-time", "{{ now() }}"),
        ("date", "20{{ random_int(20, 29) }}-{{ random_int(10, 12) }}-{{ random_int(10, 28) }}"),
        ("email", "user{{ random_int(1000, 9999) }}{{ random_int(1000, 9999) }}@example.com"),
        ("uri", "https://example.com/{{ random_string(8) }}"),
        ("ipv4", "10.{{ random_int(0, 255) }}.{{ random_int(0, 255) }}.{{ random_int(1, 254) }}"),
    ] {
        let v = value_of(&format!(r#"{{"T": {{"type": "string", "format": "{format}"}}}}"#)).unwrap();
        assert_eq!(text(&v), expected, "{format}");
    }
}

#[test]
fn numbers_keep_to_their_bounds() {
    let v = |s: &str| value_of(&format!(r#"{{"T": {s}}}"#));
    assert_eq!(text(&v(r#"{"type": "integer", "minimum": 5, "maximum": 9}"#).unwrap()), "{{ random_int(5, 9) }}");
    // 3.0's flag and 3.1's bound.
    assert_eq!(
        text(
            &v(
                r#"{"type": "integer", "minimum": 5, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": true}"#
            )
            .unwrap()
        ),
        "{{ random_int(6, 8) }}"
    );
    assert_eq!(
        text(&v(r#"{"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3}"#).unwrap()),
        "{{ random_int(1, 2) }}"
    );
    assert_eq!(v(r#"{"type": "integer", "minimum": 7, "maximum": 7}"#).unwrap(), Sample::Number("7".into()));
    assert_eq!(
        v(r#"{"type": "integer", "minimum": 1, "maximum": 20, "multipleOf": 8}"#).unwrap(),
        Sample::Number("8".into())
    );
    assert_eq!(v(r#"{"type": "number", "minimum": 0.1, "maximum": 0.3}"#).unwrap(), Sample::Number("0.2".into()));
    assert_eq!(text(&v(r#"{"type": "integer", "minimum": 1000}"#).unwrap()), "{{ random_int(1000, 1100) }}");
    assert!(v(r#"{"type": "integer", "minimum": 9, "maximum": 1}"#).is_err());
}

#[test]
fn strings_keep_to_their_lengths_and_simple_patterns() {
    let v = |s: &str| value_of(&format!(r#"{{"T": {s}}}"#));
    assert_eq!(text(&v(r#"{"type": "string", "minLength": 20}"#).unwrap()), "{{ random_string(20) }}");
    assert_eq!(text(&v(r#"{"type": "string", "maxLength": 3}"#).unwrap()), "{{ random_string(3) }}");
    assert_eq!(
        text(&v(r#"{"type": "string", "pattern": "^ab-[0-9]{4}$"}"#).unwrap()),
        "ab-{{ random_int(10, 99) }}{{ random_int(10, 99) }}"
    );
    // Not simple: a plain value, and a note to check it.
    let root = doc::read(r#"{"T": {"type": "string", "pattern": "^(a|b)+$"}}"#).unwrap();
    let budget = Cell::new(1000);
    let mut walker = Walker::new(&root, &budget);
    walker.value(root.get("T").unwrap(), Purpose::Request, 0, None).unwrap();
    assert!(walker.notes[0].contains("not simple"), "{:?}", walker.notes);
}

#[test]
fn enums_are_drawn_and_consts_kept() {
    let v = |s: &str| value_of(&format!(r#"{{"T": {s}}}"#)).unwrap();
    assert_eq!(text(&v(r#"{"enum": ["a b", "it's", "1"]}"#)), r#"{{ choice('a b', "it's", '1') }}"#);
    assert_eq!(text(&v(r#"{"type": "integer", "enum": [1, 2, 3]}"#)), "{{ choice(1, 2, 3) }}");
    assert_eq!(v(r#"{"enum": [null, true]}"#), Sample::Bool(true));
    assert_eq!(v(r#"{"const": "x"}"#), Sample::Text(Text::lit("x")));
}

#[test]
fn required_and_optional_properties_read_only_left_out() {
    let v = value_of(
        r#"{"T": {"type": "object", "required": ["a"], "properties": {
            "a": {"type": "boolean"}, "b": {"type": "null"}, "id": {"type": "integer", "readOnly": true}}}}"#,
    )
    .unwrap();
    assert_eq!(v, Sample::Object(vec![("a".into(), Sample::Bool(true)), ("b".into(), Sample::Null)]));
}

#[test]
fn examples_come_first_and_unique_fields_still_vary() {
    let v = value_of(
        r#"{"T": {"type": "object", "required": ["email", "name", "n"],
            "example": {"email": "ann@example.com", "name": "Ann", "n": 4, "username": "ann"},
            "properties": {"email": {"type": "string", "format": "email"}, "name": {"type": "string"},
                           "n": {"type": "integer"}, "username": {"type": "string"}, "other": {"type": "string"}}}}"#,
    )
    .unwrap();
    assert_eq!(text(field(&v, "name").unwrap()), "Ann");
    assert_eq!(field(&v, "n"), Some(&Sample::Number("4".into())));
    assert_eq!(
        text(field(&v, "email").unwrap()),
        "ann{{ random_int(1000, 9999) }}{{ random_int(1000, 9999) }}@example.com"
    );
    assert_eq!(text(field(&v, "username").unwrap()), "ann{{ random_int(1000, 9999) }}{{ random_int(1000, 9999) }}");
    // An optional property the example does not show stays out.
    assert_eq!(field(&v, "other"), None);
    // 3.1 `examples` too.
    let v = value_of(r#"{"T": {"type": "string", "examples": ["first", "second"]}}"#).unwrap();
    assert_eq!(text(&v), "first");
}

#[test]
fn all_of_merges_and_one_of_takes_the_first_branch() {
    let v = value_of(
        r##"{"Base": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 2}}},
            "T": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"required": ["b"], "properties": {"b": {"oneOf": [{"type": "boolean"}, {"type": "string"}]}}}]}}"##,
    )
    .unwrap();
    assert_eq!(text(field(&v, "a").unwrap()), "{{ random_int(1, 2) }}");
    assert_eq!(field(&v, "b"), Some(&Sample::Bool(true)));
    // FastAPI's Optional[X]: anyOf [X, null] is X.
    let v = value_of(r#"{"T": {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]}}"#).unwrap();
    assert_eq!(text(&v), "{{ uuid() }}");
    // 3.1 type lists and 3.0 nullable.
    assert_eq!(
        text(&value_of(r#"{"T": {"type": ["null", "string"], "maxLength": 2}}"#).unwrap()),
        "{{ random_string(2) }}"
    );
    assert_eq!(
        text(&value_of(r#"{"T": {"type": "string", "nullable": true, "format": "uuid"}}"#).unwrap()),
        "{{ uuid() }}"
    );
}

#[test]
fn a_discriminator_names_the_branch_taken() {
    let v = value_of(
        r##"{"Cat": {"type": "object", "required": ["kind", "lives"], "properties": {"kind": {"type": "string"}, "lives": {"type": "integer", "minimum": 9, "maximum": 9}}},
            "Dog": {"type": "object"},
            "T": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                  "discriminator": {"propertyName": "kind", "mapping": {"cat": "#/components/schemas/Cat"}}}}"##,
    )
    .unwrap();
    assert_eq!(text(field(&v, "kind").unwrap()), "cat");
    assert_eq!(field(&v, "lives"), Some(&Sample::Number("9".into())));
}

#[test]
fn cycles_and_depth_end_cleanly() {
    // A required cycle cannot be made; an optional one is left out.
    let required = r##"{"T": {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/components/schemas/T"}}}}"##;
    let err = value_of(required).unwrap_err();
    assert!(err.0.contains("$ref cycle: #/components/schemas/T → #/components/schemas/T"), "{err:?}");
    let optional = r##"{"T": {"type": "object", "required": ["v"], "properties": {"v": {"type": "boolean"}, "next": {"$ref": "#/components/schemas/T"}}}}"##;
    assert_eq!(value_of(optional).unwrap(), Sample::Object(vec![("v".into(), Sample::Bool(true))]));
    // A nullable one is null; a list of them empty.
    let nullable = r##"{"T": {"type": "object", "required": ["next", "kids"], "properties": {"next": {"anyOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]}, "kids": {"type": "array", "items": {"$ref": "#/components/schemas/T"}}}}}"##;
    assert_eq!(
        value_of(nullable).unwrap(),
        Sample::Object(vec![("next".into(), Sample::Null), ("kids".into(), Sample::Array(vec![]))])
    );
    // allOf in a circle.
    let circle = r##"{"T": {"allOf": [{"$ref": "#/components/schemas/U"}]}, "U": {"allOf": [{"$ref": "#/components/schemas/T"}]}}"##;
    assert!(value_of(circle).unwrap_err().0.contains("$ref cycle"));
    // An external reference is never fetched.
    let external = r#"{"T": {"$ref": "https://example.com/schema.json"}}"#;
    assert!(value_of(external).unwrap_err().0.contains("external references are not fetched"));
}
