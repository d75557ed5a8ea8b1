//! Values merge, proven against helm v3.22.0 (e2e/bin/helm): random chart defaults and random
//! `-f` layers (nested maps, nulls, scalars, lists) merged by `helm template` of a probe chart
//! that prints `.Values`, and by `values::merge`. They must be equal, every time.
//!
//! `make test` runs 200 cases (VALUES_CASES).

use kommander_e2e::{Rng, root};
use kommander_operator::values::{self, Values};
use serde_json::{Value, json};
use std::process::Command;

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth < 3 { 8 } else { 6 }) {
        0 | 1 => Value::Null,
        2 => json!(rng.below(100)),
        3 => json!(format!("s{}", rng.below(10))),
        4 => json!(rng.below(2) == 0),
        5 => json!([rng.below(5), "x"]),
        _ => Value::Object(map(rng, depth + 1)),
    }
}

fn map(rng: &mut Rng, depth: u32) -> Values {
    let mut m = Values::new();
    for key in ["a", "b", "c", "d", "e"] {
        if rng.below(2) == 0 {
            m.insert(key.to_string(), value(rng, depth));
        }
    }
    m
}

#[test]
fn e2e_values_merge_like_helm() {
    let cases: u64 = std::env::var("VALUES_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let helm = root().join("e2e/bin/helm");
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("probe");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/values.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: values}\ndata:\n  values.json: {{ toJson .Values | quote }}\n",
    )
    .unwrap();
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    let mut differ = Vec::new();
    for n in 0..cases {
        let defaults = map(&mut rng, 0);
        let layers: Vec<Values> = (0..1 + rng.below(3)).map(|_| map(&mut rng, 0)).collect();
        std::fs::write(
            chart.join("values.yaml"),
            serde_json::to_string(&defaults).unwrap(),
        )
        .unwrap();
        let mut cmd = Command::new(&helm);
        cmd.args(["template", "probe"]).arg(&chart);
        for (i, layer) in layers.iter().enumerate() {
            let f = dir.path().join(format!("layer-{i}.json"));
            std::fs::write(&f, serde_json::to_string(layer).unwrap()).unwrap();
            cmd.arg("-f").arg(f);
        }
        let out = cmd.output().expect("e2e/bin/helm runs (make e2e-build)");
        assert!(
            out.status.success(),
            "case {n}: helm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs =
            kommander_operator::yaml::parse_all(&String::from_utf8_lossy(&out.stdout)).unwrap();
        let text = docs[0]["data"]["values.json"].as_str().unwrap().to_string();
        let theirs: Value = serde_json::from_str(&text).unwrap();
        let ours = Value::Object(values::merge(&defaults, &layers));
        if ours != theirs {
            differ.push(format!(
                "case {n}:\n  defaults {}\n  layers {}\n  helm {theirs}\n  ours {ours}",
                Value::Object(defaults.clone()),
                serde_json::to_string(&layers).unwrap()
            ));
        }
    }
    println!(
        "values merge vs helm v3.22.0: {cases} cases, {} equal, {} differ",
        cases - differ.len() as u64,
        differ.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
