//! Template helpers, named and behaving like their Helm/Sprig counterparts where one exists.
//!
//! Helpers that produce YAML or text meant to be placed verbatim (`toYaml`, `indent`, …) write
//! to the output unescaped; everything else a template interpolates goes through
//! [`yaml_safe`], so a value can never change the structure of the rendered YAML.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Register every helper on `hb`.
pub fn register(hb: &mut Handlebars<'_>) {
    hb.register_helper("toYaml", Box::new(Verbatim(to_yaml)));
    hb.register_helper("toJson", Box::new(Verbatim(to_json)));
    hb.register_helper("indent", Box::new(Verbatim(indent)));
    hb.register_helper("nindent", Box::new(Verbatim(nindent)));
    hb.register_helper("quote", Box::new(Verbatim(quote)));
    hb.register_helper("sha256", Box::new(Verbatim(sha256)));
    hb.register_helper("b64enc", Box::new(Verbatim(b64enc)));
    hb.register_helper("concat", Box::new(Escaped(concat)));
    hb.register_helper("default", Box::new(Escaped(default)));
    hb.register_helper("required", Box::new(Escaped(required)));
    hb.register_helper("fail", Box::new(Escaped(fail)));
    hb.register_helper("chartName", Box::new(Escaped(chart_name)));
    hb.register_helper("fullname", Box::new(Escaped(fullname)));
    hb.register_helper("metallbResources", Box::new(Verbatim(metallb_resources)));
    // eq, ne, gt, gte, lt, lte, and, or, not, len are handlebars built-ins.
}

/// The escape function for `{{value}}`: plain, harmless text stays as is; anything YAML could
/// read as structure (newlines, `: `, ` #`, indicators, document markers) becomes a quoted
/// YAML string, so it stays one scalar.
pub fn yaml_safe(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn is_plain_safe(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let allowed = |c: char| {
        c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '=' | '+' | '-' | ':' | '@' | ' ')
    };
    s.chars().all(allowed)
        && !s.starts_with([' ', '-', ':', '@'])
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
}

type Params<'a> = [&'a Value];
type HelperFn = fn(&str, &Params<'_>) -> Result<Value, String>;

/// A helper whose result is written without escaping (it is already valid YAML/text).
struct Verbatim(HelperFn);
/// A helper whose result is a value, escaped like any other interpolation.
struct Escaped(HelperFn);

fn invoke(f: HelperFn, h: &Helper<'_>) -> Result<Value, RenderError> {
    // Borrowed, not cloned: `toYaml` is often handed a whole subtree.
    let params: Vec<&Value> = h.params().iter().map(|p| p.value()).collect();
    f(h.name(), &params).map_err(|m| RenderErrorReason::Other(m).into())
}

impl HelperDef for Verbatim {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        invoke(self.0, h).map(ScopedJson::Derived)
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let v = invoke(self.0, h)?;
        out.write(&as_text(&v))?;
        Ok(())
    }
}

impl HelperDef for Escaped {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        invoke(self.0, h).map(ScopedJson::Derived)
    }
}

/// How a value reads when placed in text: strings bare, everything else as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn arg<'a>(name: &str, p: &Params<'a>, i: usize, what: &str) -> Result<&'a Value, String> {
    p.get(i)
        .copied()
        .ok_or_else(|| format!("helper `{name}` needs {what} as argument {}", i + 1))
}

/// The widest indent a template may ask for: a huge width would allocate gigabytes per line.
const MAX_INDENT: u64 = 256;

fn width(name: &str, p: &Params<'_>) -> Result<usize, String> {
    let w = arg(name, p, 0, "a width")?;
    match w.as_u64() {
        // Indenting by 0 would let a value's own lines start at column 0, where `---` opens
        // a new object; every real use indents by at least one.
        Some(n) if (1..=MAX_INDENT).contains(&n) => Ok(n as usize),
        _ => Err(format!(
            "helper `{name}`: width must be a whole number from 1 to {MAX_INDENT}, got {w}"
        )),
    }
}

fn to_yaml(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let v = arg(name, p, 0, "a value")?;
    crate::yaml::to_yaml(v)
        .map(Value::String)
        .map_err(|e| format!("helper `{name}`: {e}"))
}

fn to_json(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let v = arg(name, p, 0, "a value")?;
    serde_json::to_string(v)
        .map(Value::String)
        .map_err(|e| format!("helper `{name}`: {e}"))
}

fn indent_text(n: usize, text: &str) -> String {
    let pad = " ".repeat(n);
    let mut out = String::with_capacity(text.len() + pad.len() * 4);
    out.push_str(&pad);
    out.push_str(&text.replace('\n', &format!("\n{pad}")));
    out
}

fn indent(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let n = width(name, p)?;
    let text = as_text(arg(name, p, 1, "the text to indent")?);
    Ok(Value::String(indent_text(n, &text)))
}

fn nindent(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let n = width(name, p)?;
    let text = as_text(arg(name, p, 1, "the text to indent")?);
    Ok(Value::String(format!("\n{}", indent_text(n, &text))))
}

/// Sprig `quote`: each non-null argument as a double-quoted string, joined by spaces.
fn quote(_: &str, p: &Params<'_>) -> Result<Value, String> {
    let parts: Vec<String> = p
        .iter()
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_string(&as_text(v)).unwrap_or_default())
        .collect();
    Ok(Value::String(parts.join(" ")))
}

fn sha256(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let text = as_text(arg(name, p, 0, "a string")?);
    let digest = Sha256::digest(text.as_bytes());
    Ok(Value::String(
        digest.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

fn b64enc(name: &str, p: &Params<'_>) -> Result<Value, String> {
    use base64::Engine as _;
    let text = as_text(arg(name, p, 0, "a string")?);
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
    ))
}

/// `concat a b …`: the arguments' text, joined (Helm charts use `printf "%s%s"` for this).
fn concat(_: &str, p: &Params<'_>) -> Result<Value, String> {
    Ok(Value::String(p.iter().map(|v| as_text(v)).collect()))
}

/// Sprig's notion of empty: null, false, 0, "", [] and {}.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// Sprig `default DEFAULT GIVEN`: GIVEN unless it is empty (or absent).
fn default(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let fallback = arg(name, p, 0, "the default value")?;
    match p.get(1) {
        Some(v) if !is_empty(v) => Ok((*v).clone()),
        _ => Ok(fallback.clone()),
    }
}

/// Sprig `required MESSAGE VALUE`: fails the render with MESSAGE when VALUE is null or "".
fn required(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let message = as_text(arg(name, p, 0, "a message")?);
    match p.get(1) {
        None | Some(Value::Null) => Err(format!("required value missing: {message}")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("required value missing: {message}")),
        Some(v) => Ok((*v).clone()),
    }
}

/// Helm `fail MESSAGE`: the render fails with MESSAGE.
fn fail(name: &str, p: &Params<'_>) -> Result<Value, String> {
    Err(as_text(arg(name, p, 0, "a message")?))
}

/// Helm's `trunc 63 | trimSuffix "-"`, the limit of an object name label.
fn name_limit(s: &str) -> String {
    let cut: String = s.chars().take(63).collect();
    cut.strip_suffix('-').unwrap_or(&cut).to_string()
}

/// `chartName CHART NAME_OVERRIDE`: the `<chart>.name` of `helm create`.
fn chart_name(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let chart = as_text(arg(name, p, 0, "the chart name")?);
    let given = p.get(1).copied().filter(|v| !is_empty(v)).map(as_text);
    Ok(Value::String(name_limit(&given.unwrap_or(chart))))
}

/// `fullname CHART RELEASE NAME_OVERRIDE FULLNAME_OVERRIDE`: the `<chart>.fullname` of
/// `helm create`: the override, else the release name when it contains the chart's name, else
/// `<release>-<name>`; at most 63 characters, no trailing `-`.
fn fullname(name: &str, p: &Params<'_>) -> Result<Value, String> {
    let chart = as_text(arg(name, p, 0, "the chart name")?);
    let release = as_text(arg(name, p, 1, "the release name")?);
    let pick = |i: usize| p.get(i).copied().filter(|v| !is_empty(v)).map(as_text);
    if let Some(full) = pick(3) {
        return Ok(Value::String(name_limit(&full)));
    }
    let short = pick(2).unwrap_or(chart);
    Ok(Value::String(if release.contains(&short) {
        name_limit(&release)
    } else {
        name_limit(&format!("{release}-{short}"))
    }))
}

/// `metallbResources CONFIG_INLINE NAMESPACE FRR`: a MetalLB 0.12 config as the custom
/// resources of MetalLB 0.13 and later (YAML documents), or the render fails naming each
/// problem.
fn metallb_resources(name: &str, p: &Params<'_>) -> Result<Value, String> {
    use crate::metallb::config::{SpeakerMode, parse};
    use crate::metallb::convert;
    let config = arg(name, p, 0, "configInline")?;
    let namespace = as_text(arg(name, p, 1, "the namespace")?);
    let mode = if p.get(2).is_some_and(|v| !is_empty(v)) {
        SpeakerMode::Frr
    } else {
        SpeakerMode::Native
    };
    // JSON is YAML: the 0.12 parser reads the value as MetalLB read its ConfigMap.
    let text = serde_json::to_string(config).map_err(|e| e.to_string())?;
    let cfg = parse(&text, mode).map_err(|e| format!("configInline: {e}"))?;
    let objects = convert::to_resources(&cfg, &namespace).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("configInline: {}", list.join("; "))
    })?;
    let mut out = String::new();
    for o in &objects {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_yaml(o).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_safe_leaves_plain_words_alone() {
        for s in [
            "metallb",
            "10.0.50.25-10.0.50.50",
            "quay.io/metallb/controller:v0.12.1",
            "64500:100",
            "a b",
            "7472",
            "",
        ] {
            assert_eq!(yaml_safe(s), s);
        }
    }

    #[test]
    fn yaml_safe_quotes_anything_structural() {
        for s in [
            "a\nb",
            "--- kind: Secret",
            "a: b",
            "x #c",
            "- item",
            "{a: 1}",
            "[1]",
            "*alias",
            "&a",
            "!tag",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "trailing:",
            " lead",
            "%x",
            "`x`",
        ] {
            let out = yaml_safe(s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
            assert_eq!(
                crate::yaml::parse(&format!("k: {out}")).unwrap(),
                json!({"k": s}),
                "{s:?}"
            );
        }
    }

    #[test]
    fn indent_and_nindent_follow_sprig() {
        assert_eq!(
            indent("indent", &[&json!(2), &json!("a\nb")]).unwrap(),
            json!("  a\n  b")
        );
        assert_eq!(
            nindent("nindent", &[&json!(4), &json!("a")]).unwrap(),
            json!("\n    a")
        );
    }

    #[test]
    fn indent_rejects_zero_huge_and_non_numbers() {
        assert!(
            indent("indent", &[&json!(1_000_000_000u64), &json!("a")])
                .unwrap_err()
                .contains("from 1 to 256")
        );
        assert!(
            indent("indent", &[&json!(0), &json!("a")])
                .unwrap_err()
                .contains("from 1 to")
        );
        assert!(
            nindent("nindent", &[&json!("x"), &json!("a")])
                .unwrap_err()
                .contains("width")
        );
        assert!(indent("indent", &[]).unwrap_err().contains("argument 1"));
    }

    #[test]
    fn quote_skips_nulls_and_escapes() {
        assert_eq!(
            quote("quote", &[&json!("a\"b"), &Value::Null, &json!(7)]).unwrap(),
            json!("\"a\\\"b\" \"7\"")
        );
    }

    #[test]
    fn default_uses_fallback_for_empty_values() {
        for empty in [
            Value::Null,
            json!(""),
            json!(0),
            json!(false),
            json!([]),
            json!({}),
        ] {
            assert_eq!(
                default("default", &[&json!("fb"), &empty]).unwrap(),
                json!("fb")
            );
        }
        assert_eq!(default("default", &[&json!("fb")]).unwrap(), json!("fb"));
        assert_eq!(
            default("default", &[&json!("fb"), &json!("given")]).unwrap(),
            json!("given")
        );
    }

    #[test]
    fn required_fails_on_null_and_empty() {
        assert_eq!(
            required("required", &[&json!("pools needed"), &Value::Null]).unwrap_err(),
            "required value missing: pools needed"
        );
        assert!(required("required", &[&json!("m"), &json!("")]).is_err());
        assert_eq!(
            required("required", &[&json!("m"), &json!(1)]).unwrap(),
            json!(1)
        );
    }

    #[test]
    fn concat_joins_text() {
        assert_eq!(
            concat("concat", &[&json!("metallb"), &json!("-"), &json!(7)]).unwrap(),
            json!("metallb-7")
        );
    }

    #[test]
    fn sha256_and_b64enc_are_standard() {
        assert_eq!(
            sha256("sha256", &[&json!("abc")]).unwrap(),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            b64enc("b64enc", &[&json!("hello")]).unwrap(),
            json!("aGVsbG8=")
        );
    }

    #[test]
    fn fullname_follows_helm_create() {
        let f = |release: &str, name: Value, full: Value| {
            fullname(
                "fullname",
                &[&json!("metallb"), &json!(release), &name, &full],
            )
            .unwrap()
        };
        assert_eq!(f("metallb", json!(""), json!("")), json!("metallb"));
        assert_eq!(
            f("my-metallb-1", Value::Null, Value::Null),
            json!("my-metallb-1")
        );
        assert_eq!(f("lb", json!(""), json!("")), json!("lb-metallb"));
        assert_eq!(f("lb", json!("mlb"), json!("")), json!("lb-mlb"));
        assert_eq!(f("lb", json!("mlb"), json!("edge")), json!("edge"));
        let long = "a".repeat(62);
        assert_eq!(f(&long, json!(""), json!("")), json!(format!("{long}")));
        assert_eq!(
            f(&format!("{}-x", "b".repeat(61)), json!(""), json!("")),
            json!("b".repeat(61) + "-x")
        );
        // Cut at 63 characters, then no trailing '-'.
        let cut = f(&"c".repeat(62), json!("zz"), json!(""));
        assert_eq!(cut, json!("c".repeat(62)));
        assert_eq!(
            chart_name("chartName", &[&json!("metallb"), &json!("")]).unwrap(),
            json!("metallb")
        );
    }

    #[test]
    fn fail_fails_with_its_message() {
        assert_eq!(fail("fail", &[&json!("no")]).unwrap_err(), "no");
    }

    #[test]
    fn metallb_resources_converts_or_names_the_problem() {
        let cfg = json!({"address-pools": [{"name": "default", "protocol": "layer2", "addresses": ["10.0.50.25-10.0.50.50"]}]});
        let out = metallb_resources("m", &[&cfg, &json!("ws"), &json!(true)]).unwrap();
        let docs = crate::yaml::parse_all(out.as_str().unwrap()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["kind"], "IPAddressPool");
        assert_eq!(docs[1]["kind"], "L2Advertisement");
        let bad = json!({"address-pools": [{"name": "x", "protocol": "layer3", "addresses": ["10.0.0.0/30"]}]});
        let e = metallb_resources("m", &[&bad, &json!("ws"), &json!(false)]).unwrap_err();
        assert!(e.starts_with("configInline: address pool #1 \"x\""), "{e}");
    }
}
