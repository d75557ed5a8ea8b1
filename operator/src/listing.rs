//! Lists of names in messages (Events, conditions, status): cut to a readable length with
//! the count of what was left out, however many Services or objects there are.

/// How many characters of a list of names a message holds before it says how many more.
pub const LIST_LIMIT: usize = 400;

/// `items` joined with "; ", cut after `limit` characters at an item boundary, with the count
/// of the items left out: an Event or condition stays readable however many Services block.
pub fn listed(items: &[String], limit: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        if i > 0 && out.len() + sep.len() + item.len() > limit {
            out.push_str(&format!("; and {} more", items.len() - i));
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_is_cut_at_an_item_with_the_count_left_out() {
        let items: Vec<String> = (0..50)
            .map(|i| format!("default/svc-{i:02} holds 10.0.0.{i}"))
            .collect();
        let text = listed(&items, 100);
        assert!(text.starts_with("default/svc-00 holds 10.0.0.0; default/svc-01 holds 10.0.0.1"));
        assert!(text.ends_with("; and 47 more"), "{text}");
        assert!(text.len() <= 100 + "; and 47 more".len());
        assert_eq!(
            listed(&items[..2], 100),
            "default/svc-00 holds 10.0.0.0; default/svc-01 holds 10.0.0.1"
        );
        assert_eq!(listed(&[], 100), "");
    }
}
