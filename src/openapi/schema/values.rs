//! Values a flattened schema allows: from its examples (unique fields
//! varied), `const`, `enum`, formats, bounds, lengths and patterns; objects
//! and lists part by part, within the value's size bound.

use super::*;

impl<'d> Walker<'d> {
    /// A value for `schema`; `hint` is an example of the whole value
    /// (a media type's), which wins over the schema's own examples.
    pub fn value(
        &mut self,
        schema: &'d Value,
        purpose: Purpose,
        depth: usize,
        hint: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let flat = self.flatten(schema, depth)?;
        self.value_of(&flat, purpose, depth, None, hint)
    }

    /// A value for a flattened schema; `name` is its property name, if any.
    pub fn value_of(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        name: Option<&str>,
        hint: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        if flat.nothing {
            return Err(SchemaError("the schema is `false`: no value is valid".to_string()));
        }
        let unique = name.is_some_and(looks_unique) || matches!(flat.format, Some("email" | "uuid"));
        // An example of a whole object or list is followed part by part
        // (below), so that its unique fields can vary.
        let example = hint.or(flat.example);
        if let Some(example) = example.filter(|e| !matches!(e, Value::Object(_) | Value::Array(_)))
            && let Some(sample) = self.example_value(example, flat, unique)
        {
            return self.sized(sample);
        }
        if let Some(constant) = flat.constant
            && let Some(sample) = from_json(constant, 0)
        {
            return self.sized(sample);
        }
        if let Some(values) = flat.enumeration.filter(|v| !v.is_empty()) {
            return self.sized(enumeration(values));
        }
        let depth = depth + 1;
        let pushed = flat.refs.len();
        self.stack.extend(flat.refs.iter().copied());
        let result = match primary_type(flat) {
            "null" => Ok(Sample::Null),
            "boolean" => Ok(flat.default.and_then(Value::as_bool).map_or(Sample::Bool(true), Sample::Bool)),
            "integer" => integer(flat),
            "number" => number(flat),
            "string" => Ok(Sample::Text(self.string(flat, unique))),
            "array" => self.array(flat, purpose, depth, example),
            _ if example.is_some_and(|e| matches!(e, Value::Array(_))) => from_json(example.unwrap_or(&Value::Null), 0)
                .ok_or_else(|| SchemaError("the example is too large".into())),
            _ => self.object(flat, purpose, depth, example),
        };
        self.stack.truncate(self.stack.len() - pushed);
        self.sized(result?)
    }

    fn sized(&mut self, sample: Sample) -> Result<Sample, SchemaError> {
        self.size += sample.size();
        if self.size > MAX_VALUE_BYTES {
            return Err(SchemaError(format!("the value would be larger than {} KiB", MAX_VALUE_BYTES / 1024)));
        }
        Ok(sample)
    }

    /// The example as it is, except that a value meant to be unique (an
    /// email, a username…) gets random digits, so creates do not collide.
    fn example_value(&mut self, example: &Value, flat: &Flat<'d>, unique: bool) -> Option<Sample> {
        let sample = from_json(example, 0)?;
        if sample.size() > MAX_VALUE_BYTES {
            return None;
        }
        if !unique {
            return Some(sample);
        }
        let Sample::Text(text) = &sample else { return Some(sample) };
        let text = text.as_literal()?;
        if flat.pattern.is_some() || flat.format == Some("uuid") {
            return None; // made from the pattern or format instead
        }
        let room = flat.max_length.is_none_or(|max| text.chars().count() + 8 <= max as usize);
        if !room {
            return None;
        }
        let mut varied = Text::default();
        match text.split_once('@') {
            Some((local, domain)) => {
                varied.push_lit(local);
                varied.append(pattern::digit_run(8));
                varied.push_lit("@");
                varied.push_lit(domain);
            }
            None => {
                varied.push_lit(&text);
                varied.append(pattern::digit_run(8));
            }
        }
        Some(Sample::Text(varied))
    }

    fn string(&mut self, flat: &Flat<'d>, unique: bool) -> Text {
        let min = flat.min_length.map_or(0, |n| n.max(0.0) as usize);
        let max = flat.max_length.map(|n| n.max(0.0) as usize);
        if let Some(p) = flat.pattern {
            match pattern::sample(p) {
                Some(text) => return text,
                None => self.note(format!("pattern `{}` is not simple: check the value", doc::short(p))),
            }
        }
        if let Some(text) = format_value(flat.format) {
            return text;
        }
        if max == Some(0) {
            return Text::default();
        }
        if max.is_some_and(|max| max < min) {
            self.note(format!("minLength {min} is above maxLength {}: check the value", max.unwrap_or_default()));
        }
        let length = 8usize.max(if unique { 10 } else { 0 }).max(min).min(max.unwrap_or(usize::MAX)).max(1);
        if length <= 1024 {
            Text::hole(format!("random_string({length})"))
        } else {
            Text::lit("x".repeat(length.min(MAX_VALUE_BYTES)))
        }
    }

    fn array(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        example: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let example_items = example.and_then(Value::as_array).filter(|items| !items.is_empty());
        let min = flat.min_items.map_or(0, |n| n.max(0.0) as usize);
        let max = flat.max_items.map(|n| n.max(0.0) as usize);
        if min > MAX_ITEMS * 4 {
            return Err(SchemaError(format!("minItems {min} is more than a load test should send")));
        }
        let count = min.max(1).min(max.unwrap_or(usize::MAX)).min(MAX_ITEMS.max(min));
        let Some(items) = flat.items else {
            if let Some(listed) = example.and_then(|e| from_json(e, 0)) {
                return Ok(listed);
            }
            return Ok(Sample::Array((0..count).map(|_| Sample::Text(Text::hole("random_string(8)"))).collect()));
        };
        let count = example_items.map_or(count, |listed| listed.len().clamp(min, MAX_ITEMS.max(min)));
        let mut out = Vec::new();
        for i in 0..count {
            let hint = example_items.and_then(|listed| listed.get(i % listed.len()));
            match self.value(items, purpose, depth, hint) {
                Ok(item) => out.push(item),
                Err(e) if out.len() >= min => {
                    self.note(format!("an array's items left out: {}", e.0));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Sample::Array(out))
    }

    fn object(
        &mut self,
        flat: &Flat<'d>,
        purpose: Purpose,
        depth: usize,
        example: Option<&'d Value>,
    ) -> Result<Sample, SchemaError> {
        let example = example.filter(|e| e.as_object().is_some());
        if flat.properties.is_empty()
            && let Some(whole) = example.and_then(|e| from_json(e, 0))
        {
            return Ok(whole); // nothing to follow it by
        }
        let mut entries: Vec<(String, Sample)> = Vec::new();
        let mut optional = 0;
        for (name, property) in &flat.properties {
            if !key_ok(name) || entries.iter().any(|(n, _)| n == name) {
                self.note(format!("property `{}` cannot be written as a key: left out", doc::short(name)));
                continue;
            }
            let required = flat.required.contains(name);
            // With an example of the object, its optional properties are
            // the ones it shows.
            let hint = example.and_then(|e| e.get(name));
            if !required && example.is_some() && hint.is_none() {
                continue;
            }
            let property_flat = match self.flatten(property, depth) {
                Ok(f) => f,
                Err(e) if !required => {
                    self.note(format!("optional `{}` left out: {}", doc::short(name), e.0));
                    continue;
                }
                Err(_) if may_be_null(self.root, property) => {
                    entries.push((name.to_string(), Sample::Null));
                    continue;
                }
                Err(e) => return Err(SchemaError(format!("`{}`: {}", doc::short(name), e.0))),
            };
            let skip = match purpose {
                Purpose::Request => property_flat.read_only,
                Purpose::Response => property_flat.write_only,
            };
            if skip || (!required && optional >= MAX_OPTIONAL) {
                continue;
            }
            if let Some((discriminator, value)) = &flat.discriminator
                && discriminator == name
            {
                entries.push((name.to_string(), Sample::Text(Text::lit(value.clone()))));
                continue;
            }
            match self.value_of(&property_flat, purpose, depth, Some(name), hint) {
                Ok(value) => {
                    if !required {
                        optional += 1;
                    }
                    entries.push((name.to_string(), value));
                }
                Err(e) if !required => self.note(format!("optional `{}` left out: {}", doc::short(name), e.0)),
                Err(_) if property_flat.nullable => entries.push((name.to_string(), Sample::Null)),
                Err(e) => return Err(SchemaError(format!("`{}`: {}", doc::short(name), e.0))),
            }
        }
        // Required without a schema of their own.
        for name in &flat.required {
            if key_ok(name)
                && !entries.iter().any(|(n, _)| n == name)
                && !flat.properties.iter().any(|(n, _)| n == name)
            {
                entries.push((name.to_string(), Sample::Text(Text::hole("random_string(8)"))));
            }
        }
        if let Some((discriminator, value)) = &flat.discriminator
            && key_ok(discriminator)
            && !entries.iter().any(|(n, _)| n == discriminator)
        {
            entries.push((discriminator.to_string(), Sample::Text(Text::lit(value.clone()))));
        }
        if entries.is_empty()
            && flat.min_properties.is_some_and(|m| m >= 1.0)
            && let Some(additional) = flat.additional.filter(|a| a.as_object().is_some())
        {
            entries.push(("key".to_string(), self.value(additional, purpose, depth, None)?));
        }
        Ok(Sample::Object(entries))
    }
}

/// Names of properties whose values are usually unique per record.
fn looks_unique(name: &str) -> bool {
    let plain: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    matches!(plain.as_str(), "email" | "mail" | "emailaddress" | "username" | "login" | "handle" | "slug" | "nickname")
}

/// A JSON value as a sample (strings literal), if it is small.
pub fn from_json(value: &Value, depth: usize) -> Option<Sample> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match value {
        Value::Null => Sample::Null,
        Value::Bool(b) => Sample::Bool(*b),
        Value::Number(n) => Sample::Number(n.to_string()),
        Value::String(s) if s.len() <= MAX_EXAMPLE_TEXT => Sample::Text(Text::lit(s.to_string())),
        Value::String(_) => return None,
        Value::Array(items) if items.len() <= 64 => {
            Sample::Array(items.iter().map(|i| from_json(i, depth + 1)).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(o) if o.len() <= 64 => {
            let mut entries: Vec<(String, Sample)> = Vec::new();
            for (key, value) in o.iter() {
                if key_ok(key) && !entries.iter().any(|(k, _)| k == key) {
                    entries.push((key.to_string(), from_json(value, depth + 1)?));
                }
            }
            Sample::Object(entries)
        }
        _ => return None,
    })
}

/// A key a workload body can hold: a template cannot be a key, so none
/// with `{{` (and none too long to be one).
pub fn key_ok(key: &str) -> bool {
    !key.contains("{{") && key.len() <= 256
}

/// One of the values, drawn per request when they are all text or all
/// whole numbers; otherwise the first.
fn enumeration(values: &[Value]) -> Sample {
    let listed: Vec<&Value> = values.iter().filter(|v| !matches!(v, Value::Null)).take(100).collect();
    let first = || listed.first().and_then(|v| from_json(v, 0)).unwrap_or(Sample::Null);
    if listed.len() < 2 {
        return first();
    }
    let items: Option<Vec<String>> = listed
        .iter()
        .map(|v| match v {
            Value::String(s) if choice_item_ok(s) => {
                Some(if s.contains('\'') { format!("\"{s}\"") } else { format!("'{s}'") })
            }
            Value::Number(n) if !n.contains(['.', 'e', 'E']) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    let all_text = listed.iter().all(|v| matches!(v, Value::String(_)));
    let all_numbers = listed.iter().all(|v| matches!(v, Value::Number(_)));
    match items {
        Some(items) if all_text || all_numbers => Sample::Text(Text::hole(format!("choice({})", items.join(", ")))),
        _ => first(),
    }
}

/// A text a `choice(…)` can hold quoted: no control characters, not both
/// quotes, not empty, not too long, and no `}}` (which would end the hole).
fn choice_item_ok(s: &str) -> bool {
    let both_quotes = s.contains('\'') && s.contains('"');
    !(s.is_empty() || s.len() > 256 || both_quotes || s.contains("}}") || s.chars().any(char::is_control))
}

/// Text for a known `format`.
fn format_value(format: Option<&str>) -> Option<Text> {
    let mut t = Text::default();
    match format? {
        "uuid" => t.push_hole("uuid()"),
        "date-time" => t.push_hole("now()"),
        "date" => {
            t.push_lit("20");
            t.push_hole("random_int(20, 29)");
            t.push_lit("-");
            t.push_hole("random_int(10, 12)");
            t.push_lit("-");
            t.push_hole("random_int(10, 28)");
        }
        "time" => {
            t.push_hole("random_int(10, 23)");
            t.push_lit(":");
            t.push_hole("random_int(10, 59)");
            t.push_lit(":");
            t.push_hole("random_int(10, 59)");
        }
        "email" | "idn-email" => {
            t.push_lit("user");
            t.append(pattern::digit_run(8));
            t.push_lit("@example.com");
        }
        "uri" | "url" | "iri" | "uri-reference" | "iri-reference" => {
            t.push_lit("https://example.com/");
            t.push_hole("random_string(8)");
        }
        "hostname" | "idn-hostname" => {
            t.push_lit("host");
            t.append(pattern::digit_run(6));
            t.push_lit(".example.com");
        }
        "ipv4" => {
            t.push_lit("10.");
            t.push_hole("random_int(0, 255)");
            t.push_lit(".");
            t.push_hole("random_int(0, 255)");
            t.push_lit(".");
            t.push_hole("random_int(1, 254)");
        }
        "ipv6" => {
            t.push_lit("2001:db8::");
            t.push_hole("random_int(1000, 9999)");
        }
        "byte" => t.push_lit("dHJhZmZpY2dlbg=="),
        "duration" => {
            t.push_lit("PT");
            t.push_hole("random_int(10, 59)");
            t.push_lit("S");
        }
        _ => return None,
    }
    Some(t)
}

/// Whole-number bounds from the flat schema, within `i64`.
fn integer_bounds(flat: &Flat<'_>) -> Result<(i64, i64), SchemaError> {
    let lo = flat.minimum.map(|m| if flat.exclusive_minimum { (m + 1.0).floor() } else { m.ceil() });
    let hi = flat.maximum.map(|m| if flat.exclusive_maximum { (m - 1.0).ceil() } else { m.floor() });
    let clamp = |f: f64| f.clamp(-9.0e18, 9.0e18) as i64;
    let (lo, hi) = match (lo.map(clamp), hi.map(clamp)) {
        (Some(lo), Some(hi)) => (lo, hi),
        (Some(lo), None) => (lo, lo.saturating_add(100)),
        (None, Some(hi)) => (hi.saturating_sub(100).max(hi.min(1)), hi),
        (None, None) => (1, 100),
    };
    let (lo, hi) = match flat.format {
        Some("int32") => (lo.max(i64::from(i32::MIN)), hi.min(i64::from(i32::MAX))),
        _ => (lo, hi),
    };
    if lo > hi {
        return Err(SchemaError(format!("no whole number lies between the minimum and the maximum ({lo} > {hi})")));
    }
    Ok((lo, hi))
}

fn integer(flat: &Flat<'_>) -> Result<Sample, SchemaError> {
    let (lo, hi) = integer_bounds(flat)?;
    if let Some(step) = flat.multiple_of.filter(|m| m.fract() == 0.0 && *m >= 1.0) {
        let step = step.min(9.0e18) as i64;
        let first = lo.div_euclid(step).saturating_add(i64::from(lo.rem_euclid(step) != 0)).saturating_mul(step);
        if first > hi {
            return Err(SchemaError(format!("no multiple of {step} lies between {lo} and {hi}")));
        }
        return Ok(Sample::Number(first.to_string()));
    }
    Ok(if lo == hi {
        Sample::Number(lo.to_string())
    } else {
        Sample::Text(Text::hole(format!("random_int({lo}, {hi})")))
    })
}

fn number(flat: &Flat<'_>) -> Result<Sample, SchemaError> {
    if flat.multiple_of.is_none_or(|m| m.fract() == 0.0) && integer_bounds(flat).is_ok() {
        return integer(flat);
    }
    // No whole number fits (0.1 to 0.9) or a fractional step: a fixed value.
    let lo = flat.minimum.unwrap_or(0.0);
    let hi = flat.maximum.unwrap_or(lo + 1.0);
    let mut value = (lo + hi) / 2.0;
    if let Some(step) = flat.multiple_of {
        value = (value / step).round() * step;
    }
    match serde_json::Number::from_f64(value) {
        Some(n) if lo <= value && value <= hi => Ok(Sample::Number(n.to_string())),
        _ => Err(SchemaError(format!("no number satisfies minimum {lo}, maximum {hi} and the step"))),
    }
}
