//! "Did you mean …?" for validation messages: the closest known word to a misspelt one, and
//! serde's "unknown field / unknown variant" messages rewritten around that suggestion.
//!
//! Pure string work, kept small on purpose: an edit distance over the handful of ids, node
//! kinds and field names a journey has needs no library.

/// Edit distance: insertions, deletions, substitutions and swaps of two neighbouring
/// characters (`wiat` is one edit from `wait`), each counting one (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back (for swaps), one back, and the current one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be what was meant: at most one
/// edit per three characters (at least one), ignoring case. Ties go to the first candidate. `word` itself is never suggested.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = edit_distance(&wanted, &candidate.to_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `"; did you mean `x`?"` when a candidate is close to `word`, else nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// What serde says when a name is not one it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName<'a> {
    /// `field` or `variant`.
    pub what: &'a str,
    /// The name as written.
    pub name: &'a str,
    /// The names serde would have accepted.
    pub expected: Vec<&'a str>,
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (also "expected `a` or `b`",
/// "expected `a`" and the same for variants).
pub fn parse_unknown_name(message: &str) -> Option<UnknownName<'_>> {
    let (what, rest) = ["field", "variant"]
        .into_iter()
        .find_map(|what| Some((what, message.strip_prefix(&format!("unknown {what} `"))?)))?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .strip_prefix(", expected ")
        .map(|list| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    Some(UnknownName {
        what,
        name,
        expected,
    })
}

/// A serde error message made short where a suggestion says it better: "unknown field
/// `filtr`; did you mean `filter`?" instead of the list of every field. Messages without a
/// close suggestion are returned as they are (their list of what is allowed helps then).
/// `noun` names what a variant is here (e.g. "node type"); `None` says "value".
pub fn explain_serde_error(message: &str, noun: Option<&str>) -> String {
    let Some(unknown) = parse_unknown_name(message) else {
        return message.to_string();
    };
    let Some(suggestion) = closest(unknown.name, unknown.expected.iter().copied()) else {
        return message.to_string();
    };
    let what = match unknown.what {
        "field" => "field",
        _ => noun.unwrap_or("value"),
    };
    format!(
        "unknown {what} `{}`; did you mean `{suggestion}`?",
        unknown.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("send_mail", "send_email"), 1);
        assert_eq!(edit_distance("wéll", "well"), 1);
        assert_eq!(edit_distance("wiat", "wait"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
    }

    #[test]
    fn closest_is_close_enough_or_nothing() {
        let ids = ["welcome", "wait", "goodbye"];
        assert_eq!(closest("welcom", ids), Some("welcome"));
        assert_eq!(closest("Welcome", ids), Some("welcome"));
        assert_eq!(closest("wiat", ids), Some("wait"));
        assert_eq!(closest("zzz", ids), None);
        assert_eq!(
            closest("welcome", ids),
            None,
            "the word itself is no suggestion"
        );
        assert_eq!(closest("x", ["y"]), Some("y"), "one edit is always allowed");
        assert_eq!(closest("ab", ["xy"]), None);
    }

    #[test]
    fn serde_messages_are_read() {
        assert_eq!(
            parse_unknown_name("unknown field `filtr`, expected one of `event`, `filter`"),
            Some(UnknownName {
                what: "field",
                name: "filtr",
                expected: vec!["event", "filter"]
            })
        );
        assert_eq!(
            parse_unknown_name("unknown variant `onse`, expected `once` or `every_time`")
                .map(|u| u.expected),
            Some(vec!["once", "every_time"])
        );
        assert_eq!(
            parse_unknown_name("unknown field `x`, there are no fields").map(|u| u.expected),
            Some(vec![])
        );
        assert_eq!(parse_unknown_name("missing field `template`"), None);
    }

    #[test]
    fn serde_messages_become_suggestions() {
        assert_eq!(
            explain_serde_error(
                "unknown variant `send_mail`, expected one of `send_email`, `send_sms`",
                Some("node type")
            ),
            "unknown node type `send_mail`; did you mean `send_email`?"
        );
        assert_eq!(
            explain_serde_error("unknown field `filtr`, expected `event` or `filter`", None),
            "unknown field `filtr`; did you mean `filter`?"
        );
        let far = "unknown field `zzz`, expected `event` or `filter`";
        assert_eq!(explain_serde_error(far, None), far);
        assert_eq!(
            explain_serde_error("missing field `template`", None),
            "missing field `template`"
        );
    }
}
