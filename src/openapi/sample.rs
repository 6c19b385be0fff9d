//! Values a derived request sends: JSON whose strings may hold template
//! holes (`{{ uuid() }}`), before they are written as workload text.

/// A piece of a text value: literal text, or a template function call
/// written without its braces (`random_int(1, 10)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Hole(String),
}

/// A text value: pieces one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub Vec<Piece>);

impl Text {
    pub fn lit(text: impl Into<String>) -> Text {
        Text(vec![Piece::Lit(text.into())])
    }

    pub fn hole(call: impl Into<String>) -> Text {
        Text(vec![Piece::Hole(call.into())])
    }

    pub fn push_lit(&mut self, text: &str) {
        if let Some(Piece::Lit(last)) = self.0.last_mut() {
            last.push_str(text);
        } else if !text.is_empty() {
            self.0.push(Piece::Lit(text.to_string()));
        }
    }

    pub fn push_hole(&mut self, call: impl Into<String>) {
        self.0.push(Piece::Hole(call.into()));
    }

    pub fn append(&mut self, other: Text) {
        for piece in other.0 {
            match piece {
                Piece::Lit(text) => self.push_lit(&text),
                Piece::Hole(call) => self.push_hole(call),
            }
        }
    }

    /// The text if it has no holes.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Lit(text) => out.push_str(text),
                Piece::Hole(_) => return None,
            }
        }
        Some(out)
    }

    /// Written as a workload template: literal `{{` escaped, holes in braces.
    pub fn template(&self) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Lit(text) => out.push_str(&text.replace("{{", "{{ '{{' }}")),
                Piece::Hole(call) => {
                    out.push_str("{{ ");
                    out.push_str(call);
                    out.push_str(" }}");
                }
            }
        }
        out
    }

    /// Bytes it takes written (a bound, for size budgets).
    pub fn size(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Lit(t) => t.len(),
                Piece::Hole(c) => c.len() + 6,
            })
            .sum()
    }
}

/// A JSON value whose strings are [`Text`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    Null,
    Bool(bool),
    /// JSON number syntax.
    Number(String),
    /// A text; a single numeric hole (`random_int`) is sent as a bare
    /// JSON number, anything else as a JSON string.
    Text(Text),
    Array(Vec<Sample>),
    Object(Vec<(String, Sample)>),
}

impl Sample {
    /// Bytes it takes written (a bound, for size budgets).
    pub fn size(&self) -> usize {
        match self {
            Sample::Null | Sample::Bool(_) => 5,
            Sample::Number(n) => n.len(),
            Sample::Text(t) => t.size() + 2,
            Sample::Array(items) => 2 + items.iter().map(|i| i.size() + 1).sum::<usize>(),
            Sample::Object(entries) => 2 + entries.iter().map(|(k, v)| k.len() + 4 + v.size()).sum::<usize>(),
        }
    }

    /// The value as one text (for a path, query or header value, or a
    /// form field): scalars only.
    pub fn as_text(&self) -> Option<Text> {
        match self {
            Sample::Null => Some(Text::lit("")),
            Sample::Bool(b) => Some(Text::lit(b.to_string())),
            Sample::Number(n) => Some(Text::lit(n.clone())),
            Sample::Text(t) => Some(t.clone()),
            Sample::Array(_) | Sample::Object(_) => None,
        }
    }
}
