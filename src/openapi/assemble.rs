//! The drafts made into the workload file: names, pools (which sources
//! get one, within the bound), the setup login, a journey per resource,
//! the header that says what was derived and what was left out, and each
//! request with its comment.

use std::collections::HashMap;

use super::*;

/// What [`Deriver::write`] assembles.
pub(super) struct Parts<'p, 'd> {
    pub ops: &'p [operations::Operation<'d>],
    pub resources: &'p resources::Resources,
    pub login: Option<auth::Login>,
    pub setup: Option<(Draft, String)>,
    /// Requests of their own, in document order.
    pub drafts: Vec<Draft>,
    /// Operations sent only as journey steps.
    pub steps_only: Vec<Draft>,
    pub journeys: Vec<CrudFlow>,
    pub left_out: LeftOutList,
    pub base: String,
}

/// In a journey: the parameter its instances fill from their own create.
struct InJourney<'a> {
    source: usize,
    var: &'a str,
}

impl<'d> Deriver<'_, 'd> {
    pub(super) fn write(self, parts: Parts<'_, 'd>) -> Result<Derived, Refusal> {
        let Parts { ops, resources, login, setup, drafts, steps_only, journeys, left_out, base } = parts;
        let root = self.root;
        // Names: the operationId, else method and path; unique.
        let mut names: HashMap<usize, String> = HashMap::new();
        let mut taken: Vec<String> = Vec::new();
        for draft in setup.iter().map(|(d, _)| d).chain(drafts.iter()) {
            let name = unique(request_name(&ops[draft.op]), &mut taken);
            names.insert(draft.op, name);
        }
        // Pools: a source's pool exists when its operation is a request of
        // its own and another reads it, first come first served within the
        // bound.
        let room = MAX_POOLS - usize::from(login.is_some());
        let mut pools: Vec<(usize, String)> = Vec::new();
        let mut pool_names: Vec<String> = vec![TOKEN_POOL.to_string()];
        for draft in &drafts {
            for part in &draft.path {
                let PathPart::Param { source: Some(source), .. } = part else { continue };
                let source_op = resources.sources[*source].op;
                if pools.iter().any(|(s, _)| s == source) || !names.contains_key(&source_op) || pools.len() == room {
                    continue;
                }
                let s = &resources.sources[*source];
                let name = unique(sanitize(&format!("{}_{}", s.resource, s.param), "ids"), &mut pool_names);
                pools.push((*source, name));
            }
        }

        let mut file = write::File::default();
        if login.is_some() {
            file.pools.push(write::Pool {
                name: TOKEN_POOL.to_string(),
                size: 1,
                comment: "the login's token (never printed)".to_string(),
            });
        }
        for (source, name) in &pools {
            let s = &resources.sources[*source];
            let how = match s.found {
                resources::Found::Link => "by the document's link",
                resources::Found::Create => "from the create",
                resources::Found::List => "from the list of what exists",
            };
            file.pools.push(write::Pool {
                name: name.clone(),
                size: POOL_SIZE,
                comment: format!(
                    "`{{{}}}` of {}: JSON {} of {}'s answers ({how})",
                    doc::short(&s.param),
                    doc::short(&s.resource),
                    doc::short(&s.pointer),
                    names[&s.op]
                ),
            });
        }
        let cx = Names { ops, names: &names, resources, pools: &pools };

        match (&login, setup) {
            (Some(auth::Login::Operation { .. }), Some((draft, token_pointer))) => {
                let mut request = cx.request(&draft, names[&draft.op].clone(), None, None);
                request.captures.push(write::Capture::pool(TOKEN_POOL, &token_pointer));
                file.setup.push(request);
                file.setup_every_secs = Some(LOGIN_EVERY_SECS);
            }
            (Some(auth::Login::TokenUrl { path, scheme }), _) => {
                let mut fields = vec![("grant_type".to_string(), Text::lit("password"))];
                fields.push(("username".to_string(), auth::credential(auth::USERNAME_VAR)));
                fields.push(("password".to_string(), auth::credential(auth::PASSWORD_VAR)));
                file.setup.push(write::Request {
                    comment: vec![
                        format!(
                            "POST {} — the tokenUrl of OAuth2 scheme `{}`'s password flow (not an operation of the document)",
                            doc::short(path),
                            doc::short(scheme)
                        ),
                        format!("the setup login: its access_token goes into {TOKEN_POOL}"),
                    ],
                    name: unique("login".to_string(), &mut taken),
                    weight: None,
                    method: Method::Post,
                    path: format!("{base}{}", write::path_literal(path, true)),
                    query: Vec::new(),
                    headers: Vec::new(),
                    body: Some(write::Body::Text(
                        write::form(&fields),
                        "application/x-www-form-urlencoded".to_string(),
                    )),
                    success: None,
                    captures: vec![write::Capture::pool(TOKEN_POOL, "/access_token")],
                    fallback: None,
                });
                file.setup_every_secs = Some(LOGIN_EVERY_SECS);
            }
            _ => {}
        }
        for draft in &drafts {
            let weight = if ops[draft.op].is_read() { self.options.read_weight } else { self.options.write_weight };
            let request = cx.request(draft, names[&draft.op].clone(), Some(weight), None);
            file.requests.push(request);
        }
        break_fallback_cycles(&mut file.requests);

        // A journey per resource.
        let by_op: HashMap<usize, &Draft> = drafts.iter().chain(steps_only.iter()).map(|d| (d.op, d)).collect();
        let mut flows = Vec::new();
        for flow in &journeys {
            let Some(create) = by_op.get(&flow.create) else { continue };
            let source = &resources.sources[flow.source];
            let var = sanitize(&source.param, "id");
            let here = InJourney { source: flow.source, var: &var };
            let mut steps = vec![cx.step(create, "create", &here, Some(&source.pointer))];
            for (step, op) in [("read", flow.read), ("update", flow.update), ("delete", flow.delete)] {
                if let Some(draft) = op.and_then(|o| by_op.get(&o)) {
                    steps.push(cx.step(draft, step, &here, None));
                }
            }
            let name = unique(sanitize(&format!("{}_lifecycle", flow.resource), "lifecycle"), &mut taken);
            let described: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            // The operationId, else `METHOD /path`.
            let short = |op: usize| ops[op].operation_id.map_or_else(|| ops[op].label(), doc::short);
            let label = |op: Option<usize>| op.filter(|o| by_op.contains_key(o)).map(short);
            flows.push(NamedFlow {
                resource: flow.resource.clone(),
                journey: name.clone(),
                create: short(flow.create),
                read: label(flow.read),
                update: label(flow.update),
                delete: label(flow.delete),
            });
            file.journeys.push(write::Journey {
                comment: vec![
                    format!(
                        "Each instance creates one of {} and works on that one: {}",
                        doc::short(&flow.resource),
                        described.join(" → ")
                    ),
                    format!(
                        "`{{{}}}` is the instance's own variable `{var}`, from the create's answer (JSON {})",
                        doc::short(&source.param),
                        doc::short(&source.pointer)
                    ),
                    "Add think time between steps with `- pause: {uniform: [1s, 3s]}`.".to_string(),
                ],
                name,
                weight: self.options.write_weight,
                steps,
            });
        }

        file.header = self.header(root, login.as_ref(), &flows, &left_out, &base);
        let mut text = file.render();
        let credentials = credentials(&text);
        if !credentials.is_empty() {
            // Said right after the header's first paragraph.
            let at = text.find("\n#\n").map_or(0, |i| i + 3);
            let mut line = String::from(if auth::READ_FROM_ENV {
                "# Credentials come from the environment (env()): set these before running it or checking it:\n"
            } else {
                "# Credentials: replace each of these below with its value:\n"
            });
            for name in &credentials {
                line.push_str(&format!("#   {name}\n"));
            }
            line.push_str("#\n");
            text.insert_str(at, &line);
        }
        if text.len() > crate::workload::MAX_FILE_BYTES {
            return Err(Refusal(format!(
                "the derived workload would be larger than the {} KiB a workload may be",
                crate::workload::MAX_FILE_BYTES / 1024
            )));
        }
        let mut problems = self.problems;
        problems.sort();
        problems.dedup();
        Ok(Derived {
            text,
            problems,
            requests: file.setup.len() + file.requests.len(),
            left_out: left_out.count,
            more_problems: self.more_problems,
            flows,
            credentials,
            version: self.version,
        })
    }

    fn header(
        &self,
        root: &doc::Value,
        login: Option<&auth::Login>,
        flows: &[NamedFlow],
        left_out: &LeftOutList,
        base: &str,
    ) -> Vec<String> {
        let info = root.get("info");
        let title = info.and_then(|i| i.str_at("title")).map(doc::short).unwrap_or_else(|| "an API".to_string());
        let api_version = info.and_then(|i| i.str_at("version")).map(doc::short).unwrap_or_default();
        let o = self.options;
        let mut h = vec![
            format!("A workload derived by `trafficgen workload from-openapi` from {}", doc::short(self.source)),
            format!(
                "({title} {api_version}, OpenAPI {}). An ordinary workload file: edit it freely;",
                doc::short(&self.version)
            ),
            "`trafficgen workload check FILE` shows what it sends.".to_string(),
            String::new(),
            format!(
                "Weights: each read (GET, HEAD, OPTIONS) {}, each write (POST, PUT, PATCH, DELETE) and each journey {}:",
                o.read_weight, o.write_weight
            ),
            "most real traffic reads, and writes grow what the target stores (--read-weight, --write-weight)."
                .to_string(),
            "Values come from the document's examples, else from the schemas; an id a path names is taken from"
                .to_string(),
            "a pool the operation that creates it fills (that operation is the fallback while the pool is empty)."
                .to_string(),
        ];
        if !base.is_empty() {
            h.push(format!("Paths start with the first server's path {base}; TARGET_URL names the host."));
        }
        if self.options.include_delete {
            h.push(
                "A DELETE of a resource with a journey is sent only there, on the id that instance created;"
                    .to_string(),
            );
            h.push("any other takes ids from the pools, so a read may then find an id deleted (404).".to_string());
        }
        if login.is_some() {
            h.push(format!(
                "Setup: a login before the traffic and every {LOGIN_EVERY_SECS} s; its token goes into {TOKEN_POOL}."
            ));
        }
        if !flows.is_empty() {
            h.push(String::new());
            h.push(
                "Journeys, one per resource (create → read → update → delete, on the instance's own id):".to_string(),
            );
            for flow in flows.iter().take(MAX_LISTED) {
                let steps: Vec<&str> =
                    [Some(&flow.create), flow.read.as_ref(), flow.update.as_ref(), flow.delete.as_ref()]
                        .into_iter()
                        .flatten()
                        .map(String::as_str)
                        .collect();
                h.push(format!("  {}: {}", flow.journey, steps.join(" → ")));
            }
        }
        if left_out.count > 0 {
            h.push(String::new());
            h.push(format!("Left out ({}):", left_out.count));
            for entry in &left_out.shown {
                h.push(format!("  {}: {}", entry.label, entry.why));
            }
            if left_out.count > left_out.shown.len() {
                h.push(format!("  … and {} more", left_out.count - left_out.shown.len()));
            }
        }
        h
    }
}

/// What a request is written with: the requests' names and the pools.
struct Names<'a, 'd> {
    ops: &'a [operations::Operation<'d>],
    names: &'a HashMap<usize, String>,
    resources: &'a resources::Resources,
    pools: &'a [(usize, String)],
}

impl Names<'_, '_> {
    fn pool_of(&self, source: usize) -> Option<&str> {
        self.pools.iter().find(|(s, _)| *s == source).map(|(_, n)| n.as_str())
    }

    /// A journey step: no weight or fallback; the journey's own parameter
    /// from the instance's variable, captured by the create (`capture`).
    fn step(&self, draft: &Draft, name: &str, here: &InJourney<'_>, capture: Option<&str>) -> write::Request {
        let mut step = self.request(draft, name.to_string(), None, Some(here));
        step.fallback = None;
        step.captures = capture.map(|pointer| vec![write::Capture::var(here.var, pointer)]).unwrap_or_default();
        step
    }

    /// A draft as written, with its pools decided.
    fn request(
        &self,
        draft: &Draft,
        name: String,
        weight: Option<u32>,
        journey: Option<&InJourney<'_>>,
    ) -> write::Request {
        let op = &self.ops[draft.op];
        let mut comment = vec![match (op.operation_id, op.summary) {
            (Some(id), Some(summary)) => format!("{} — {}: {}", op.label(), doc::short(id), doc::short(summary)),
            (Some(id), None) => format!("{} — {}", op.label(), doc::short(id)),
            (None, Some(summary)) => format!("{} — {}", op.label(), doc::short(summary)),
            (None, None) => op.label(),
        }];
        let documented = if draft.answers.documented.is_empty() {
            String::new()
        } else {
            format!("; documented answers: {}", draft.answers.documented.join(", "))
        };
        comment.push(format!("from {}{documented}", op.pointer()));
        let mut path = String::new();
        let mut fallback = None;
        for part in &draft.path {
            match part {
                PathPart::Lit(text) => path.push_str(&text.replace("{{", "{{ '{{' }}")),
                PathPart::Param { source: Some(s), .. } if journey.is_some_and(|j| j.source == *s) => {
                    path.push_str(&format!("{{{{ var({}) }}}}", journey.map_or("id", |j| j.var)));
                }
                PathPart::Param { name, source, value } => match source.and_then(|s| self.pool_of(s).map(|p| (s, p))) {
                    Some((s, pool)) => {
                        path.push_str(&format!("{{{{ pool({pool}) }}}}"));
                        let creator = self.names.get(&self.resources.sources[s].op).cloned().unwrap_or_default();
                        comment.push(format!("{{{}}}: an id from {pool}, filled by {creator}", doc::short(name)));
                        fallback = Some(creator);
                    }
                    None => path.push_str(&write::path_value(value)),
                },
            }
        }
        let captures: Vec<write::Capture> = self
            .pools
            .iter()
            .filter(|(s, _)| self.resources.sources[*s].op == draft.op)
            .map(|(s, pool)| write::Capture::pool(pool, &self.resources.sources[*s].pointer))
            .collect();
        if journey.is_none() {
            for capture in &captures {
                comment.push(format!("its answer's JSON {} goes into {}", capture.pointer, capture.target));
            }
        }
        comment.extend(draft.notes.iter().cloned());
        let mut headers: Vec<(String, String)> =
            draft.headers.iter().map(|(n, v)| (n.clone(), write::header_value(v))).collect();
        if draft.login_token {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
            headers.push(("Authorization".to_string(), format!("Bearer {{{{ pool({TOKEN_POOL}) }}}}")));
        }
        if !draft.cookies.is_empty() {
            let mut cookie = Text::default();
            for (i, (name, value)) in draft.cookies.iter().enumerate() {
                if i > 0 {
                    cookie.push_lit("; ");
                }
                cookie.push_lit(&format!("{name}="));
                cookie.append(value.clone());
            }
            headers.push(("Cookie".to_string(), write::header_value(&cookie)));
        }
        let body = draft.body.as_ref().map(|body| match body {
            BodyDraft::Json(sample @ (sample::Sample::Object(_) | sample::Sample::Array(_)), media_type) => {
                let explicit = (!media_type.eq_ignore_ascii_case("application/json")).then(|| media_type.clone());
                write::Body::Json(sample.clone(), explicit)
            }
            BodyDraft::Json(scalar, media_type) => {
                write::Body::Text(write::json_text(scalar).unwrap_or_else(|| "null".to_string()), media_type.clone())
            }
            BodyDraft::Form(fields, media_type) => write::Body::Text(write::form(fields), media_type.clone()),
            BodyDraft::Text(text, media_type) => write::Body::Text(text.template(), media_type.clone()),
        });
        let success = if draft.answers.success.is_empty() {
            None
        } else {
            let codes: Vec<String> = draft.answers.success.iter().map(u16::to_string).collect();
            Some(format!("[{}]", codes.join(", ")))
        };
        write::Request {
            comment,
            fallback: fallback.filter(|f| *f != name && !f.is_empty()),
            name,
            weight,
            method: op.method,
            path: if path.is_empty() { "/".to_string() } else { path },
            query: draft.query.iter().map(|(n, v)| (n.clone(), v.template())).collect(),
            headers,
            body,
            success,
            captures,
        }
    }
}

/// The environment variables (or, without `env()`, the placeholders) a
/// text's credentials read, each once, in order.
pub fn credentials(text: &str) -> Vec<String> {
    let marker = if auth::READ_FROM_ENV { auth::ENV_PREFIX } else { auth::PLACEHOLDER };
    let mut found: Vec<String> = Vec::new();
    for (at, _) in text.match_indices(marker) {
        let name: String =
            text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        if !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// A request name from the operationId, else from method and path:
/// letters, digits and `_`, at most 64 long.
fn request_name(op: &operations::Operation<'_>) -> String {
    let raw = match op.operation_id {
        Some(id) => id.to_string(),
        None => format!("{}_{}", op.method.as_str().to_ascii_lowercase(), op.path),
    };
    sanitize(&raw, "request")
}

fn sanitize(raw: &str, fallback: &str) -> String {
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('_') && !name.is_empty() {
            name.push('_');
        }
    }
    let mut name = name.trim_end_matches('_').to_string();
    if name.is_empty() {
        name = fallback.to_string();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(56);
    name
}

/// `name`, or `name_2`, `name_3`… if taken; then taken.
fn unique(name: String, taken: &mut Vec<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

/// Fallbacks may not go round in a circle (links can point both ways):
/// the fallback that closes one is dropped.
fn break_fallback_cycles(requests: &mut [write::Request]) {
    for start in 0..requests.len() {
        let mut seen = vec![requests[start].name.clone()];
        let mut at = start;
        while let Some(next) = requests[at].fallback.clone() {
            let Some(next_at) = requests.iter().position(|r| r.name == next) else {
                requests[at].fallback = None;
                break;
            };
            if seen.contains(&next) {
                requests[at].fallback = None;
                break;
            }
            seen.push(next);
            at = next_at;
        }
    }
}
