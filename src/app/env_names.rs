//! Environment names one edit away from a setting's: `STEDY_RPS=50` is
//! ignored by clap without a word, so the sidecar starts at the default
//! rate and the user never learns why. Pure: the caller hands in the names.

/// A warning for each name in `present` that is not one of `known` but
/// close to one: at most one edit away for names of up to 6 characters,
/// two for longer ones (a transposition is one edit). Only names written
/// like settings (capitals, digits, `_`) are looked at.
pub fn misspelled<'a>(present: impl IntoIterator<Item = &'a str>, known: &[&str]) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in present {
        if known.contains(&name) || !looks_like_a_setting(name) {
            continue;
        }
        let limit = if name.len() <= 6 { 1 } else { 2 };
        let nearest = known.iter().map(|k| (edits(name, k), *k)).filter(|(d, _)| *d <= limit).min();
        if let Some((_, meant)) = nearest {
            warnings.push(format!("{name} is not a setting of trafficgen and is ignored; did you mean {meant}?"));
        }
    }
    warnings.sort();
    warnings
}

fn looks_like_a_setting(name: &str) -> bool {
    (3..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edits(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["STEADY_RPS", "BURST_RPS", "MAX_RPS", "PORT", "BIND", "PEERS", "TARGET_URL", "RUST_LOG"];

    #[test]
    fn near_misses_are_named_with_the_setting_meant() {
        let table: [(&str, Option<&str>); 14] = [
            ("STEDY_RPS", Some("STEADY_RPS")),
            ("STAEDY_RPS", Some("STEADY_RPS")),
            ("BURST_PRS", Some("BURST_RPS")),
            ("TARGET_URI", Some("TARGET_URL")),
            ("PORTS", Some("PORT")),
            ("MAX_RPS", None),
            ("PATH", None),
            ("HOME", None),
            ("PWD", None),
            ("HOSTNAME", None),
            ("TERM", None),
            ("steady_rps", None),
            ("RUST_LOG", None),
            ("MAX_RPS_X", Some("MAX_RPS")),
        ];
        for (name, meant) in table {
            let warnings = misspelled([name], KNOWN);
            match meant {
                Some(meant) => {
                    assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
                    assert!(warnings[0].contains(&format!("did you mean {meant}?")), "{name}: {warnings:?}");
                }
                None => assert!(warnings.is_empty(), "{name}: {warnings:?}"),
            }
        }
    }

    #[test]
    fn edits_count_each_kind_once() {
        assert_eq!(edits("ABC", "ABC"), 0);
        assert_eq!(edits("ABC", "ACB"), 1);
        assert_eq!(edits("ABC", "AB"), 1);
        assert_eq!(edits("", "ABC"), 3);
    }
}
