//! A workload's request as the script's pieces: its templates as literal
//! text and typed holes (each with the way its value is written where it
//! sits), its captures, the pools and variables it reads and takes.

use crate::workload::escape::percent_encode;
use crate::workload::model::{Body as ModelBody, CaptureSource, Json, RequestDef, StatusSet};
use crate::workload::template::{Hole, Part, Piece as TemplatePiece, Template};

use super::super::text::pointer_tokens;
use super::{Body, Cap, CapSource, Ctx, Gen, JsonExpr, Piece, Req, Store};

/// How a request's names resolve to the script's indexes.
pub(super) struct Names<'a> {
    pub(super) pool: &'a dyn Fn(&str) -> usize,
    pub(super) request: &'a dyn Fn(&str) -> Option<usize>,
    pub(super) table: &'a dyn Fn(&str) -> usize,
    /// Whether a hole in the path holds only captured paths.
    pub(super) path_value: &'a dyn Fn(&Hole) -> bool,
}

fn gen_of(hole: &Hole, names: &Names<'_>) -> Gen {
    match hole {
        Hole::RandomInt { min, max } => Gen::Int { min: *min, max: *max },
        Hole::Choice(items) => Gen::Choice(items.clone()),
        Hole::RandomString(n) => Gen::Str(*n),
        Hole::Uuid => Gen::Uuid,
        Hole::Seq => Gen::Seq,
        Hole::Now => Gen::Now,
        Hole::UnixTime => Gen::UnixTime,
        Hole::UnixTimeMs => Gen::UnixTimeMs,
        Hole::Pool(name) | Hole::Take(name) => Gen::Pool((names.pool)(name)),
        Hole::Var(name) => Gen::Var(name.clone()),
        Hole::Data { table, column } => Gen::Data { table: (names.table)(table), column: column.clone() },
        Hole::Env(name) => Gen::Env(name.clone()),
        Hole::Base64(pieces) => Gen::Base64(
            pieces
                .iter()
                .map(|p| match p {
                    TemplatePiece::Text(text) => Piece::Lit(text.clone()),
                    TemplatePiece::Hole(inner) => Piece::Hole(gen_of(inner, names), Ctx::Text),
                })
                .collect(),
        ),
    }
}

pub(super) fn request(def: &RequestDef, names: &Names<'_>) -> Req {
    let drawn = |hole: &Hole| gen_of(hole, names);
    let pieces = |t: &Template, ctx: Ctx, encode_literals: bool| -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for part in &t.parts {
            match part {
                Part::Literal(text) => {
                    let text = if encode_literals { percent(text) } else { text.clone() };
                    match out.last_mut() {
                        Some(Piece::Lit(prev)) => prev.push_str(&text),
                        _ => out.push(Piece::Lit(text)),
                    }
                }
                Part::Hole(hole, _) => {
                    let ctx = if ctx == Ctx::Url && !encode_literals && (names.path_value)(hole) {
                        Ctx::PathValue
                    } else {
                        ctx
                    };
                    out.push(Piece::Hole(drawn(hole), ctx))
                }
            }
        }
        out
    };

    // The path's literals are path characters already (checked at load).
    let mut target = pieces(&def.path, Ctx::Url, false);
    for (i, (name, value)) in def.query.iter().enumerate() {
        let lead = format!("{}{}=", if i == 0 { "?" } else { "&" }, percent(name));
        match target.last_mut() {
            Some(Piece::Lit(prev)) => prev.push_str(&lead),
            _ => target.push(Piece::Lit(lead)),
        }
        for piece in pieces(value, Ctx::Url, true) {
            match (target.last_mut(), piece) {
                (Some(Piece::Lit(prev)), Piece::Lit(text)) => prev.push_str(&text),
                (_, piece) => target.push(piece),
            }
        }
    }

    let headers = def.headers.iter().map(|(name, value)| (name.clone(), pieces(value, Ctx::Text, false))).collect();
    let content_type = def.effective_content_type().map(str::to_string);
    let body = match &def.body {
        None => None,
        Some(ModelBody::Json(json)) => Some(Body::Json(json_expr(json, &drawn, &pieces))),
        Some(ModelBody::Raw(t)) => Some(Body::Text(match content_type.as_deref().map(media_kind) {
            Some(Media::Json) => raw_json(t, &drawn),
            Some(Media::Form) => pieces(t, Ctx::Url, false),
            _ => pieces(t, Ctx::Text, false),
        })),
    };
    let mut needs: Vec<usize> = Vec::new();
    for name in def.pools_read() {
        let i = (names.pool)(name);
        if !needs.contains(&i) {
            needs.push(i);
        }
    }
    let mut takes: Vec<usize> = Vec::new();
    let mut vars: Vec<String> = Vec::new();
    for (hole, _) in def.templates().flat_map(Template::holes) {
        match hole {
            Hole::Take(name) => {
                let i = (names.pool)(name);
                if !takes.contains(&i) {
                    takes.push(i);
                }
            }
            Hole::Var(name) if !vars.contains(name) => vars.push(name.clone()),
            _ => {}
        }
    }
    let captures = def
        .captures
        .iter()
        .map(|c| Cap {
            store: match &c.var {
                Some(var) => Store::Var(var.clone()),
                None => Store::Pool((names.pool)(&c.pool)),
            },
            source: match &c.source {
                CaptureSource::Json(pointer) => CapSource::Json(pointer_tokens(pointer)),
                CaptureSource::Header(name) => CapSource::Header(name.to_ascii_lowercase()),
                CaptureSource::Body => CapSource::Body,
            },
            regex: c.regex.clone(),
            path: c.path,
            max_len: c.max_len,
            url_safe: c.url_safe,
        })
        .collect();
    Req {
        name: def.name.clone(),
        role: def.role,
        method: def.method.as_str(),
        target,
        headers,
        body,
        content_type,
        success: ranges(&def.success),
        captures,
        needs,
        takes,
        vars,
        fallback: def.fallback.as_ref().and_then(|(name, _)| (names.request)(name)),
    }
}

fn json_expr(
    json: &Json,
    drawn: &dyn Fn(&Hole) -> Gen,
    pieces: &dyn Fn(&Template, Ctx, bool) -> Vec<Piece>,
) -> JsonExpr {
    match json {
        Json::Null => JsonExpr::Literal("null".into()),
        Json::Bool(b) => JsonExpr::Literal(b.to_string()),
        Json::Number(n) => JsonExpr::Literal(n.clone()),
        Json::Text(t) => match t.single_hole() {
            Some(hole) => JsonExpr::Value(drawn(hole)),
            None => JsonExpr::Text(pieces(t, Ctx::Text, false)),
        },
        Json::Array(items) => JsonExpr::Array(items.iter().map(|i| json_expr(i, drawn, pieces)).collect()),
        Json::Object(entries) => {
            JsonExpr::Object(entries.iter().map(|(k, v)| (k.clone(), json_expr(v, drawn, pieces))).collect())
        }
    }
}

/// A JSON body written as text: a hole inside a JSON string is escaped,
/// one outside a string is a whole value (as trafficgen renders it).
fn raw_json(t: &Template, drawn: &dyn Fn(&Hole) -> Gen) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for part in &t.parts {
        match part {
            Part::Literal(text) => {
                for b in text.bytes() {
                    if in_string {
                        match (escaped, b) {
                            (true, _) => escaped = false,
                            (false, b'\\') => escaped = true,
                            (false, b'"') => in_string = false,
                            _ => {}
                        }
                    } else if b == b'"' {
                        in_string = true;
                    }
                }
                out.push(Piece::Lit(text.clone()));
            }
            Part::Hole(hole, _) => {
                out.push(Piece::Hole(drawn(hole), if in_string { Ctx::JsonString } else { Ctx::JsonValue }))
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Form,
    Other,
}

fn media_kind(content_type: &str) -> Media {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Media::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Media::Form
    } else {
        Media::Other
    }
}

fn percent(text: &str) -> String {
    let mut out = Vec::new();
    percent_encode(text.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A status set as inclusive ranges over 100…599.
pub fn ranges(set: &StatusSet) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for code in 100..=599u16 {
        if set.contains(code) {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == code => *end = code,
                _ => out.push((code, code)),
            }
        }
    }
    out
}
