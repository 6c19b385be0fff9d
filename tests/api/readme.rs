//! README.md and docs/*.md as a newcomer reads them: every `curl` example
//! runs against a real sidecar and demo target and answers what the text
//! prints, the printed `/status` and log lines have the real shape, the
//! settings tables list exactly what `--help` lists, and every relative link
//! leads to a file and heading that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The docs/ files in the order their examples run: that of the sections of
/// the README they were moved from, as later examples build on the state
/// earlier ones leave (a job that must have ended, the mode a token example
/// expects). Files not listed run after these, by name.
const DOCS_IN_ORDER: [&str; 13] = [
    "control-api.md",
    "scenarios-and-jobs.md",
    "control-panel.md",
    "configuration.md",
    "traffic.md",
    "workloads.md",
    "export-and-ci.md",
    "metrics-and-logs.md",
    "failure-and-limits.md",
    "replicas.md",
    "packaging.md",
    "performance.md",
    "dependencies.md",
];

/// README.md, then every docs/*.md: (path from the repository root, text).
fn documents() -> Vec<(String, String)> {
    let read =
        |path: &str| std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut others: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md") && !DOCS_IN_ORDER.contains(&name.as_str()))
        .collect();
    others.sort();
    let mut docs = vec![("README.md".to_string(), read("README.md"))];
    for name in DOCS_IN_ORDER.iter().map(|n| n.to_string()).chain(others) {
        let path = format!("docs/{name}");
        docs.push((path.clone(), read(&path)));
    }
    docs
}

/// All documents as one text, for what may sit in any of them.
fn all_text() -> String {
    documents().into_iter().map(|(_, text)| text).collect::<Vec<_>>().join("\n\n")
}

/// The code blocks of a Markdown text: (language, lines).
fn code_blocks(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in markdown.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(lang), None) => open = Some((lang.trim().to_string(), Vec::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some(mut block)) => {
                block.1.push(line.to_string());
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Splits a shell command line into words (quotes, backslashes) and the
/// comment after an unquoted `#`.
fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    in_word = true;
                }
            }
            (None, '#') if !in_word => {
                let comment: String = chars.collect();
                return (words, Some(comment.trim().to_string()));
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line:?}");
    if in_word {
        words.push(word);
    }
    (words, None)
}

/// A README `curl` line: its words, and the answer it prints (a JSON comment
/// on the line, or on the comment line right after it).
struct Example {
    line: String,
    words: Vec<String>,
    answer: Option<String>,
}

fn curl_examples(markdown: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    for (lang, lines) in code_blocks(markdown) {
        if lang != "sh" {
            continue;
        }
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("curl ") {
                continue;
            }
            let (mut words, comment) = shell_words(line.trim());
            // `> file` is the shell's, not curl's: the answer is still checked, never written.
            if let Some(redirect) = words.iter().position(|w| w == ">") {
                words.truncate(redirect);
            }
            let next_comment = lines.get(i + 1).and_then(|l| l.trim().strip_prefix('#')).map(|c| c.trim().to_string());
            let answer = comment.or(next_comment).filter(|c| c.starts_with('{'));
            examples.push(Example { line: line.trim().to_string(), words, answer });
        }
    }
    examples
}

/// Runs a README curl line with real curl, aimed at our processes.
fn run_curl(
    example: &Example,
    sidecar: &Proc,
    token: Option<(&Proc, &str)>,
    demo: &Proc,
    job_id: &str,
) -> (bool, String) {
    let (control, token_value) = match token {
        Some((proc, value)) if example.line.contains("$CONTROL_TOKEN") => (proc, value),
        _ => (sidecar, ""),
    };
    let args: Vec<String> = example.words[1..]
        .iter()
        .map(|w| {
            w.replace("localhost:8089", &control.addr.to_string())
                .replace("localhost:8080", &demo.addr.to_string())
                .replace("$CONTROL_TOKEN", token_value)
                .replace("$JOB_ID", job_id)
        })
        .collect();
    assert!(args.iter().all(|a| !a.contains("localhost")), "{}: aims at a port this test does not run", example.line);
    // Nothing from the environment (a proxy setting) may take part.
    let out = Command::new("curl")
        .env_clear()
        .args(["--silent", "--show-error", "--fail-with-body", "--max-time", "10", "--noproxy", "*"])
        .args(&args)
        .output()
        .expect("curl must be installed to check the README's examples");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The keys of every object in `v`, by path, and the JSON type of every leaf.
fn shape(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                shape(v, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Number(_) => {
            out.insert(path.to_string(), "number");
        }
        serde_json::Value::String(_) => {
            out.insert(path.to_string(), "string");
        }
        other => {
            out.insert(
                path.to_string(),
                if other.is_boolean() {
                    "bool"
                } else if other.is_null() {
                    "null"
                } else {
                    "other"
                },
            );
        }
    }
}

/// Keys of a flat JSON line, in the order they are written.
fn keys_in_order(line: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    keys.sort_by_key(|k| line.find(&format!("\"{k}\":")).expect("key in line"));
    keys
}

#[test]
fn every_curl_example_in_the_readme_and_docs_answers_what_it_prints() {
    let docs = documents();
    let text = all_text();
    let in_readme = curl_examples(&docs[0].1).len();
    assert!(in_readme >= 4, "README.md has only {in_readme} curl lines");
    let examples: Vec<Example> = docs.iter().flat_map(|(_, text)| curl_examples(text)).collect();
    let printed = examples.iter().filter(|e| e.answer.is_some()).count();
    assert!(examples.len() >= 30 && printed >= 10, "found only {} curl lines, {printed} with answers", examples.len());

    let demo = start_demo_target(&[]);
    // The defaults of the README, except the port and a short stats interval.
    let sidecar = start_sidecar(&demo, &[("STATS_INTERVAL_SECS", "1")]);
    let token = "readme-example-token";
    let guarded = start_sidecar(&demo, &[("CONTROL_TOKEN", token), ("INITIAL_MODE", "pause")]);
    // `$JOB_ID` is the job the latest example started.
    let mut job_id = String::new();
    for example in &examples {
        let (ok, body) = run_curl(example, &sidecar, Some((&guarded, token)), &demo, &job_id);
        assert!(ok, "{}: failed: {body}", example.line);
        if let Some(id) =
            serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["job_id"].as_str().map(String::from))
        {
            job_id = id;
        }
        if let Some(answer) = &example.answer {
            assert_eq!(&body, answer, "{}", example.line);
        }
    }
    assert_eq!(guarded.get_json("/status")["mode"], "burst", "the token example changed nothing");

    // The printed /status has the keys and types of the real one.
    let status_block = text
        .split("`GET /status`:\n\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a ```json block after `GET /status`:");
    let printed: serde_json::Value = serde_json::from_str(status_block).expect("the printed /status is JSON");
    let (mut want, mut have) = (BTreeMap::new(), BTreeMap::new());
    shape(&printed, "", &mut want);
    shape(&sidecar.get_json("/status"), "", &mut have);
    // A field that may be null (nothing to report here) matches either way.
    for (path, kind) in have.iter_mut() {
        if *kind == "null" && want.contains_key(path) {
            *kind = want[path];
        }
    }
    assert_eq!(want, have, "the printed /status vs the real one");

    // Each printed log line has the keys of a real one, in the same order.
    let logs = text.split("\n## Logs\n").nth(1).and_then(|s| s.split("\n## ").next()).expect("a Logs section");
    let examples: Vec<String> =
        code_blocks(logs).into_iter().filter(|(lang, _)| lang == "json").flat_map(|(_, lines)| lines).collect();
    assert!(examples.len() >= 2, "log examples: {examples:?}");
    assert!(sidecar.wait_for_log(|v| v["message"] == "stats", Duration::from_secs(5)).is_some());
    for example in examples {
        let message = serde_json::from_str::<serde_json::Value>(&example).expect("JSON")["message"].clone();
        let real = sidecar
            .log_lines()
            .into_iter()
            .find(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["message"] == message))
            .unwrap_or_else(|| panic!("no log line {message} in:\n{}", sidecar.output()));
        assert_eq!(keys_in_order(&example), keys_in_order(&real), "README log line vs real:\n{example}\n{real}");
    }
}

/// One row of a settings table or one option of `--help`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Setting {
    flag: String,
    env: Option<String>,
}

/// The `| env | flag | default | meaning |` table right after the line
/// `heading`, as settings and their printed defaults.
fn readme_table(text: &str, heading: &str) -> BTreeMap<Setting, String> {
    let after = text.split(heading).nth(1).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let table = after.split("\n\n").find(|p| p.trim_start().starts_with('|')).expect("a table");
    let mut rows = BTreeMap::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [_, env, flag, default, _meaning, ..] = cells[..] else { panic!("not a settings row: {row}") };
        let env = env.trim_matches('`');
        let setting =
            Setting { flag: flag.trim_matches('`').to_string(), env: (env != "—").then(|| env.to_string()) };
        let first_code = default.split('`').nth(1).unwrap_or(default).to_string();
        assert!(rows.insert(setting, first_code).is_none(), "{heading}: listed twice: {row}");
    }
    assert!(!rows.is_empty(), "{heading}: empty table");
    rows
}

/// The options of `trafficgen ARGS --help` and their defaults (before a
/// `, ` or `;`, where the help explains more).
fn help_settings(args: &[&str]) -> BTreeMap<Setting, Option<String>> {
    let out = Command::new(BIN).args(args).arg("--help").env_clear().output().expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let starts_option = line.starts_with("  ") && (trimmed.starts_with("--") || trimmed.starts_with("-h, "));
        match entries.last_mut() {
            _ if starts_option => entries.push(trimmed.to_string()),
            Some(last) if line.starts_with("   ") => last.push_str(&format!(" {trimmed}")),
            _ => {}
        }
    }
    let bracket = |entry: &str, tag: &str| -> Option<String> {
        let rest = entry.split(&format!("[{tag}: ")).nth(1)?;
        Some(rest.split(']').next()?.to_string())
    };
    entries
        .iter()
        .filter_map(|entry| {
            let flag = entry.split_whitespace().find(|w| w.starts_with("--"))?.to_string();
            if flag == "--help" || flag == "--version" {
                return None;
            }
            let env = bracket(entry, "env").map(|e| e.trim_end_matches('=').to_string());
            let default = bracket(entry, "default")
                .map(|d| d.split(';').next().and_then(|d| d.split(", ").next()).unwrap_or_default().to_string());
            Some((Setting { flag, env }, default))
        })
        .collect()
}

#[test]
fn the_settings_tables_list_exactly_what_help_lists() {
    let text = all_text();
    for (args, heading) in [
        (&[][..], "\n## Settings\n"),
        (&["demo-target"][..], "Demo target (`trafficgen demo-target`):"),
        (&["healthcheck"][..], "Health probe (`trafficgen healthcheck`):"),
    ] {
        let help = help_settings(args);
        let table = readme_table(&text, heading);
        assert!(help.len() >= 2, "{args:?}: parsed no options from --help");
        let in_help: BTreeSet<&Setting> = help.keys().collect();
        let in_readme: BTreeSet<&Setting> = table.keys().collect();
        assert_eq!(
            in_readme,
            in_help,
            "README {heading:?} vs trafficgen {args:?} --help (only in README: {:?}; only in --help: {:?})",
            in_readme.difference(&in_help).collect::<Vec<_>>(),
            in_help.difference(&in_readme).collect::<Vec<_>>()
        );
        for (setting, default) in help {
            if let Some(default) = default {
                assert_eq!(table[&setting], default, "{args:?} {}: README default vs --help", setting.flag);
            }
        }
    }
}

/// Every trafficgen image a code block runs is built before it on the same
/// page (`docker build -t`, or the offline build script): a reader who
/// follows a page from the top never needs an image from elsewhere.
#[test]
fn every_image_a_code_block_runs_is_built_before_it_on_its_page() {
    let image = |word: &str| word.strip_prefix("trafficgen:").map(str::to_string);
    let mut runs = 0;
    for (path, text) in documents() {
        let mut built: BTreeSet<String> = BTreeSet::new();
        for line in code_blocks(&text).into_iter().flat_map(|(_, lines)| lines) {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, pair) in words.windows(2).enumerate() {
                if pair != ["docker", "build"] {
                    continue;
                }
                let tags = words[i..].windows(2).filter(|w| w[0] == "-t").filter_map(|w| image(w[1]));
                built.extend(tags);
            }
            if let Some(i) = words.iter().position(|w| w.ends_with("docker-build-offline.sh")) {
                built.extend(words.get(i + 2).and_then(|w| image(w)));
            }
            if line.contains("docker run") {
                for tag in words.iter().filter_map(|w| image(w)) {
                    runs += 1;
                    assert!(
                        built.contains(&tag),
                        "{path}: `{}` runs trafficgen:{tag}, which nothing before it on the page builds",
                        line.trim()
                    );
                }
            }
        }
    }
    assert!(runs >= 3, "only {runs} docker runs of trafficgen found");
}

/// The text of a Markdown document outside code blocks and code spans, where
/// a `[text](target)` is a link.
fn prose(markdown: &str) -> String {
    let mut outside_blocks = String::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block {
            outside_blocks.push_str(line);
            outside_blocks.push('\n');
        }
    }
    // A code span opens with a run of backticks and closes at the next run
    // of the same length (it may span lines).
    let mut out = String::new();
    let mut rest = outside_blocks.as_str();
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].chars().take_while(|&c| c == '`').count();
        let fence = "`".repeat(run);
        let after = &rest[start + run..];
        match after.find(&fence) {
            Some(end) => rest = &after[end + run..],
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown document's headings (a repeated one gets
/// `-1`, `-2`… as on GitHub).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if in_block || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(line[hashes..].trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of the `[text](target)` links of a document's prose.
fn link_targets(markdown: &str) -> Vec<String> {
    prose(markdown)
        .split("](")
        .skip(1)
        .filter_map(|after| after.split(')').next())
        .map(|target| target.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor("Container image, Compose, Prometheus, Grafana, Kubernetes"),
        "container-image-compose-prometheus-grafana-kubernetes"
    );
    assert_eq!(anchor("The demo target's routes"), "the-demo-targets-routes");
    assert_eq!(anchor("Journeys: users, not requests"), "journeys-users-not-requests");
    assert_eq!(anchor("Control API (port 8089)"), "control-api-port-8089");
    assert_eq!(anchor("`deploy/`"), "deploy");
    let found = anchors("# A\n\n```sh\n# not a heading\n```\n## A\n#hashtag\n### B `c`\n");
    assert_eq!(found, ["a", "a-1", "b-c"].map(String::from).into());
    assert_eq!(link_targets("[x](a.md#b) `[y](no.md)` ![p](i.png)\n```\n[z](no)\n```\n"), ["a.md#b", "i.png"]);
}

/// Every relative link of README.md and docs/*.md leads to a file that
/// exists, and an anchor to a heading of its page; and README's map links
/// every page of docs/.
#[test]
fn every_link_between_the_readme_and_docs_leads_somewhere() {
    let docs = documents();
    let root = Path::new(ROOT);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, text) in &docs {
        let dir = Path::new(path).parent().unwrap_or(Path::new(""));
        for target in link_targets(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked: PathBuf = if file.is_empty() { PathBuf::from(path) } else { dir.join(file) };
            let on_disk = root.join(&linked);
            if !on_disk.exists() {
                problems.push(format!("{path}: ({target}): no file {}", linked.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                let page = std::fs::read_to_string(&on_disk).unwrap_or_default();
                if !anchors(&page).contains(fragment) {
                    problems.push(format!("{path}: ({target}): no heading #{fragment} in {}", linked.display()));
                }
            }
        }
    }
    let readme_links: BTreeSet<String> = link_targets(&docs[0].1).into_iter().collect();
    for (path, _) in &docs[1..] {
        if !readme_links.contains(path) {
            problems.push(format!("README.md's map does not link {path}"));
        }
    }
    eprintln!("{checked} relative links checked in {} documents", docs.len());
    assert!(checked >= 50, "only {checked} relative links found");
    assert!(problems.is_empty(), "{} broken links:\n{}", problems.len(), problems.join("\n"));
}
