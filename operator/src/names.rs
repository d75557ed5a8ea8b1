//! Object names from tenant-written fields are checked before they reach a URL: a name that is
//! not a valid Kubernetes object name (`../secrets`, `a/b`, `%2e%2e`) is refused with the field.

/// The longest object name Kubernetes accepts (DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;

/// `Ok` when `name` is a DNS-1123 subdomain (what ConfigMaps, Secrets and apps are named by);
/// otherwise a message naming `field` and the rule.
pub fn check(field: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.chars().all(ok_char)
        && ends_ok(name.chars().next())
        && ends_ok(name.chars().last())
        && name
            .split('.')
            .all(|part| ends_ok(part.chars().next()) && ends_ok(part.chars().last()));
    if valid {
        Ok(())
    } else {
        let shown: String = name.chars().take(64).collect();
        Err(format!(
            "{field}: {shown:?} is not a valid object name (lower-case letters, digits, '-' and '.', at most {MAX_NAME} characters, starting and ending with a letter or digit); it is not looked up"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["metallb", "metallb-0.12.3", "a", "a.b-c"] {
            assert!(check("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "A",
            "-a",
            "a-",
            "a..b",
            "%2e",
            "a b",
            &"a".repeat(254),
        ] {
            let e = check("spec.configOverrides.name", bad).unwrap_err();
            assert!(e.starts_with("spec.configOverrides.name: "), "{e}");
        }
    }
}
