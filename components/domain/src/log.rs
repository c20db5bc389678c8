//! The components' one log style (Spin components and guests alike): a `component event=name key=value …`
//! line on stderr, which Spin
//! and the dumper-host collect. Values holding spaces, quotes, `=` or control characters are quoted
//! (`key="a b"`), so every line splits back into its fields.

use std::fmt::Display;

/// Logs one event of `component`.
pub fn event(component: &str, event: &str, fields: &[(&str, &dyn Display)]) {
    eprintln!("{}", line(component, event, fields));
}

/// The line [`event`] prints.
pub fn line(component: &str, event: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut out = format!("{component} event={}", value(event));
    for (key, v) in fields {
        out.push(' ');
        out.push_str(key);
        out.push('=');
        out.push_str(&value(&v.to_string()));
    }
    out
}

fn value(v: &str) -> String {
    let plain = !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
    if plain {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_bare() {
        let attempt = 2;
        let l = line("job-runner", "started", &[("job", &"b-1"), ("attempt", &attempt), ("path", &"/internal/x")]);
        assert_eq!(l, "job-runner event=started job=b-1 attempt=2 path=/internal/x");
        assert_eq!(line("ticks", "tick_ok", &[]), "ticks event=tick_ok");
    }

    #[test]
    fn values_that_would_split_are_quoted_and_escaped() {
        let l = line("ticks", "tick_failed", &[("error", &"get entity: HTTP 503"), ("empty", &"")]);
        assert_eq!(l, r#"ticks event=tick_failed error="get entity: HTTP 503" empty="""#);
        let l = line("ticks", "x", &[("report", &r#"{"a":"b c"}"#), ("eq", &"a=b"), ("nl", &"1\n2\\")]);
        assert_eq!(l, r#"ticks event=x report="{\"a\":\"b c\"}" eq="a=b" nl="1\n2\\""#);
        assert_eq!(line("c", "e", &[("bell", &"\u{7}")]), r#"c event=e bell="\u{7}""#);
    }
}
