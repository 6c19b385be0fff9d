//! The `setup` section as the file writes it: requests sent before the
//! traffic (a login), when they are sent again — every so many seconds, or
//! at a fraction of the life the login's answer gives its token
//! (`every_secs: {json: /expires_in, fraction: 0.8}`) — and the answer
//! codes that, on a request reading what setup captured, call for a new
//! login (`relogin_on`, 401 by default). Journeys take `relogin_on` too.

use super::{Kind, MAX_SETUP_EVERY_SECS, Reader, RequestDef, StatusSet, json_pointer_ok};
use crate::workload::yaml::{Node, NodeKind, Plain, Pos};

/// The fraction of the answer's life used when none is given.
pub const DEFAULT_REFRESH_FRACTION: f64 = 0.8;
/// The smallest fraction: below it a login would be thrown away almost new.
pub const MIN_REFRESH_FRACTION: f64 = 0.05;

#[derive(Debug, Clone, PartialEq)]
pub struct SetupDef {
    /// Sent again every so many seconds; `None`: once, before the traffic
    /// (or when `refresh` says).
    pub every_secs: Option<u64>,
    /// Sent again at a fraction of the life an answer gives (instead of
    /// `every_secs`).
    pub refresh: Option<RefreshDef>,
    /// Answer codes of requests that read a pool setup fills which start a
    /// new setup run; empty: none.
    pub relogin_on: StatusSet,
    pub requests: Vec<RequestDef>,
    pub pos: Pos,
}

/// `every_secs: {json: /expires_in, fraction: 0.8, request: login}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshDef {
    /// The setup request whose answer says; `None`: the first.
    pub request: Option<(String, Pos)>,
    /// An RFC 6901 pointer to a number of seconds (or a text holding one).
    pub pointer: String,
    pub fraction: f64,
    pub pos: Pos,
}

/// The default `relogin_on`: 401.
pub fn unauthorized() -> StatusSet {
    let mut set = StatusSet::EMPTY;
    set.insert(401);
    set
}

impl Reader {
    pub(super) fn setup(&mut self, node: &Node) -> Option<SetupDef> {
        let fields = self.fields(node, "`setup`", &["every_secs", "relogin_on", "requests"])?;
        let requests = match fields.get("requests") {
            Some(list) => self.requests(list, Kind::Setup),
            None => {
                self.problem(fields.pos, "`setup` needs `requests`: the requests to send before the traffic");
                Vec::new()
            }
        };
        let (every_secs, refresh) = match fields.get("every_secs") {
            Some(n) if matches!(n.kind, NodeKind::Map(_)) => (None, self.refresh(n, &requests)),
            Some(n) => (self.every(n), None),
            None => (None, None),
        };
        let relogin_on = fields.get("relogin_on").map_or_else(unauthorized, |n| self.relogin_on(n));
        Some(SetupDef { every_secs, refresh, relogin_on, requests, pos: fields.pos })
    }

    fn every(&mut self, node: &Node) -> Option<u64> {
        let value = match node.typed() {
            Some(Plain::Int(n)) => u64::try_from(n).ok().filter(|n| (1..=MAX_SETUP_EVERY_SECS).contains(n)),
            _ => None,
        };
        if value.is_none() {
            let found = node.scalar().map_or_else(|| node.describe().to_string(), |s| format!("`{s}`"));
            self.problem(
                node.pos,
                format!(
                    "every_secs must be a whole number from 1 to {MAX_SETUP_EVERY_SECS}, or {{json: /expires_in, fraction: 0.8}} to take it from the login's answer; not {found}"
                ),
            );
        }
        value
    }

    fn refresh(&mut self, node: &Node, requests: &[RequestDef]) -> Option<RefreshDef> {
        let fields = self.fields(node, "`every_secs`", &["json", "fraction", "request"])?;
        let pointer = match fields.get("json") {
            Some(n) => self.string(n, "json").and_then(|p| {
                let valid = json_pointer_ok(p) && !p.is_empty();
                if !valid {
                    self.problem(
                        n.pos,
                        format!(
                            "json {p:?} is not a JSON pointer (RFC 6901) to a number of seconds, such as /expires_in"
                        ),
                    );
                }
                valid.then(|| p.to_string())
            }),
            None => {
                self.problem(
                    fields.pos,
                    "`every_secs` as a mapping needs `json`: the pointer to the seconds the answer gives, such as /expires_in",
                );
                None
            }
        };
        let fraction = match fields.get("fraction") {
            None => Some(DEFAULT_REFRESH_FRACTION),
            Some(n) => {
                let value = match n.typed() {
                    Some(Plain::Float(f)) => Some(f),
                    Some(Plain::Int(i)) => Some(i as f64),
                    _ => None,
                };
                let ok = value.filter(|f| (MIN_REFRESH_FRACTION..=1.0).contains(f));
                if ok.is_none() {
                    let found = n.scalar().map_or_else(|| n.describe().to_string(), |s| format!("`{s}`"));
                    self.problem(
                        n.pos,
                        format!(
                            "fraction must be a number from {MIN_REFRESH_FRACTION} to 1 (of the life the answer gives), not {found}"
                        ),
                    );
                }
                ok
            }
        };
        let request = fields.get("request").and_then(|n| self.name(n, "request").map(|name| (name, n.pos)));
        if let Some((name, pos)) = &request
            && !requests.iter().any(|r| &r.name == name)
        {
            let names: Vec<&str> = requests.iter().map(|r| r.name.as_str()).collect();
            self.problem(
                *pos,
                format!("`request` names unknown setup request `{name}` (setup requests: {})", names.join(", ")),
            );
        }
        Some(RefreshDef { request, pointer: pointer?, fraction: fraction?, pos: fields.pos })
    }

    /// Answer codes that call for a new login: 4xx and 5xx codes or
    /// classes; `[]` for none.
    pub(super) fn relogin_on(&mut self, node: &Node) -> StatusSet {
        if matches!(&node.kind, NodeKind::Seq(items) if items.is_empty()) {
            return StatusSet::EMPTY;
        }
        let set = self.status_set(node, "relogin_on");
        if (100..400).any(|code| set.contains(code)) {
            self.problem(
                node.pos,
                "relogin_on takes 4xx and 5xx codes (an answer that is not a success): 401, [401, 403]; [] for none",
            );
        }
        set
    }
}
