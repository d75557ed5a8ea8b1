//! Bounds on the work one app may cause. Templates are tenant-written when they come from an
//! App, so before handlebars ever parses them they are checked for what could exhaust the
//! operator: size, block nesting (the parser recurses), and partials that include each other
//! (rendering would recurse until the stack overflows). Rendering itself runs in a separate,
//! time- and memory-limited process (see `controller::sandbox`), so a template that loops for
//! too long costs that process, not the operator.

use std::collections::{BTreeMap, BTreeSet};

/// The most template source one app may carry, in bytes (all templates together).
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;
/// The most templates one app may have.
pub const MAX_TEMPLATES: usize = 256;
/// The deepest `{{#block}}` nesting a template may use.
pub const MAX_BLOCK_DEPTH: usize = 32;
/// The most rendered output of one render, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;
/// The most objects one render may produce.
pub const MAX_OBJECTS: usize = 1000;
/// The most text one overrides ConfigMap value may hold, in bytes.
pub const MAX_VALUES_BYTES: usize = 256 * 1024;

/// A bound a template broke, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// Which template, when one is at fault.
    pub template: Option<String>,
    /// The bound and how it was passed.
    pub message: String,
}

fn err(template: Option<&str>, message: String) -> LimitError {
    LimitError {
        template: template.map(str::to_string),
        message,
    }
}

/// Check an app's templates (name, source) before they are compiled.
pub fn check_templates(templates: &[(&str, &str)]) -> Result<(), LimitError> {
    if templates.len() > MAX_TEMPLATES {
        return Err(err(
            None,
            format!(
                "{} templates, more than the limit of {MAX_TEMPLATES}",
                templates.len()
            ),
        ));
    }
    let total: usize = templates.iter().map(|(_, t)| t.len()).sum();
    if total > MAX_TEMPLATE_BYTES {
        return Err(err(
            None,
            format!("{total} bytes of templates, more than the limit of {MAX_TEMPLATE_BYTES}"),
        ));
    }
    let names: BTreeSet<&str> = templates.iter().map(|(n, _)| *n).collect();
    let mut includes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, src) in templates {
        check_depth(name, src)?;
        let partials = partial_names(src).map_err(|m| err(Some(name), m))?;
        for p in &partials {
            if !names.contains(p.as_str()) {
                return Err(err(
                    Some(name),
                    format!("includes partial {p:?}, which is not a template of this app"),
                ));
            }
        }
        includes.insert(name, partials);
    }
    if let Some(cycle) = find_cycle(&includes) {
        return Err(err(
            Some(&cycle[0]),
            format!(
                "partials include each other ({}): rendering would never end",
                cycle.join(" -> ")
            ),
        ));
    }
    Ok(())
}

/// Block nesting depth, counted on `{{#` and `{{/` (with or without `~`).
fn check_depth(name: &str, src: &str) -> Result<(), LimitError> {
    let mut depth = 0usize;
    for tag in tags(src) {
        match tag.chars().next() {
            Some('#') => {
                depth += 1;
                if depth > MAX_BLOCK_DEPTH {
                    return Err(err(
                        Some(name),
                        format!("blocks nest deeper than the limit of {MAX_BLOCK_DEPTH}"),
                    ));
                }
            }
            Some('/') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The inside of every `{{…` tag, after a `~` strip marker, trimmed at the start.
fn tags(src: &str) -> impl Iterator<Item = &str> {
    src.split("{{")
        .skip(1)
        .map(|rest| rest.trim_start_matches('~').trim_start())
}

/// The partials a template includes by name. Dynamic names and inline partials are refused:
/// the include graph must be known before rendering.
fn partial_names(src: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for tag in tags(src) {
        if tag.starts_with("#*") || tag.starts_with('*') {
            return Err("decorators such as {{#*inline}} are not allowed: use a template whose name starts with `_` as a partial".into());
        }
        let Some(call) = tag.strip_prefix('>').or_else(|| tag.strip_prefix("#>")) else {
            continue;
        };
        let call = call.trim_start();
        let name = match call.chars().next() {
            Some('(') => {
                return Err(
                    "a partial's name must be written out, not computed ({{> (…)}}): the operator checks which partials include which before rendering".into(),
                );
            }
            Some(q @ ('"' | '\'')) => call[1..].split(q).next().unwrap_or_default(),
            Some('[') => call[1..].split(']').next().unwrap_or_default(),
            _ => call
                .split(|c: char| c.is_whitespace() || c == '}' || c == '~')
                .next()
                .unwrap_or_default(),
        };
        out.push(name.to_string());
    }
    Ok(out)
}

/// A cycle in the include graph, as the names along it (first repeated at the end).
fn find_cycle(includes: &BTreeMap<&str, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        includes: &'a BTreeMap<&str, Vec<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        path.push(node);
        for next in includes.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, includes, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    includes
        .keys()
        .find_map(|n| visit(n, includes, &mut marks, &mut Vec::new()))
}

/// A `std::io::Write` sink that refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
pub struct BoundedOutput {
    /// What was written so far.
    pub bytes: Vec<u8>,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(std::io::Error::other(format!(
                "rendered output passes the limit of {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ts: &[(&str, &str)]) -> Result<(), String> {
        check_templates(ts).map_err(|e| format!("{:?}: {}", e.template, e.message))
    }

    #[test]
    fn partials_that_include_each_other_are_refused() {
        let e = check(&[
            ("_a", "{{> _b}}"),
            ("_b", "x {{~> _a ctx}}"),
            ("main", "{{> _a}}"),
        ])
        .unwrap_err();
        assert!(e.contains("_a -> _b -> _a"), "{e}");
        assert!(check(&[("_self", "{{#> _self}}{{/_self}}")]).is_err());
        assert!(
            check(&[
                ("_a", "{{> _b}}"),
                ("_b", "leaf"),
                ("m", "{{> _a}}{{> _b}}")
            ])
            .is_ok()
        );
    }

    #[test]
    fn dynamic_inline_and_unknown_partials_are_refused() {
        assert!(
            check(&[("m", "{{> (lookup values \"p\")}}")])
                .unwrap_err()
                .contains("written out")
        );
        assert!(
            check(&[("m", "{{#*inline \"p\"}}{{> p}}{{/inline}}")])
                .unwrap_err()
                .contains("decorators")
        );
        assert!(
            check(&[("m", "{{> \"_nope\"}}")])
                .unwrap_err()
                .contains("_nope")
        );
        assert!(check(&[("_p", "x"), ("m", "{{> [_p]}} {{> '_p'}}")]).is_ok());
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = "{{#if a}}".repeat(MAX_BLOCK_DEPTH + 1);
        assert!(check(&[("m", &deep)]).unwrap_err().contains("nest deeper"));
        let ok = "{{#if a}}x{{/if}}".repeat(1000);
        assert!(check(&[("m", &ok)]).is_ok());
        let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(
            check(&[("m", &big)])
                .unwrap_err()
                .contains("bytes of templates")
        );
    }

    #[test]
    fn output_is_bounded() {
        use std::io::Write;
        let mut out = BoundedOutput::default();
        assert!(out.write_all(&vec![b'x'; MAX_OUTPUT_BYTES]).is_ok());
        assert!(out.write_all(b"y").is_err());
    }
}
