//! README.md as a newcomer reads it: every `curl` example runs against a
//! real sidecar and demo target and answers what the README prints, the
//! printed `/status` and log lines have the real shape, and the settings
//! tables list exactly what `--help` lists.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
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
fn every_curl_example_in_the_readme_answers_what_it_prints() {
    let text = readme();
    let examples = curl_examples(&text);
    let printed = examples.iter().filter(|e| e.answer.is_some()).count();
    assert!(examples.len() >= 15 && printed >= 7, "found only {} curl lines, {printed} with answers", examples.len());

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
    let printed: serde_json::Value = serde_json::from_str(status_block).expect("the README's /status is JSON");
    let (mut want, mut have) = (BTreeMap::new(), BTreeMap::new());
    shape(&printed, "", &mut want);
    shape(&sidecar.get_json("/status"), "", &mut have);
    // A field that may be null (nothing to report here) matches either way.
    for (path, kind) in have.iter_mut() {
        if *kind == "null" && want.contains_key(path) {
            *kind = want[path];
        }
    }
    assert_eq!(want, have, "README's /status vs the real one");

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
    let text = readme();
    for (args, heading) in [
        (&[][..], "## Configuration\n"),
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

/// Every trafficgen image a README code block runs is built in that block
/// first: a snippet copied whole works without an image from elsewhere.
#[test]
fn every_image_a_code_block_runs_is_built_in_it() {
    let image = |word: &str| word.strip_prefix("trafficgen:").map(str::to_string);
    let mut runs = 0;
    for (_, lines) in code_blocks(&readme()) {
        let mut built: BTreeSet<String> = BTreeSet::new();
        for line in &lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, pair) in words.windows(2).enumerate() {
                if pair != ["docker", "build"] {
                    continue;
                }
                let tags = words[i..].windows(2).filter(|w| w[0] == "-t").filter_map(|w| image(w[1]));
                built.extend(tags);
            }
            if line.contains("docker run") {
                for tag in words.iter().filter_map(|w| image(w)) {
                    runs += 1;
                    assert!(
                        built.contains(&tag),
                        "`{}` runs trafficgen:{tag}, which no `docker build -t` before it in its block makes",
                        line.trim()
                    );
                }
            }
        }
    }
    assert!(runs >= 3, "only {runs} docker runs of trafficgen found");
}
