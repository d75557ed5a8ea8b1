//! merge + render of the metallb-0.12.3 app with the seed's overrides.
//!
//! Every iteration gets a fresh overrides layer (a different address range), so nothing is
//! served from a cache. Three figures:
//! - `merge_render`: Helm-style merge + handlebars render to text (the goal: 20k/s);
//! - `merge_render_parse`: the same plus parsing the text into checked objects (what the
//!   operator does per cluster);
//! - `compile`: loading the app once (done per app version, not per render).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kommander_operator::catalog::load_app;
use kommander_operator::render::{ClusterInfo, CompiledApp, Release};
use kommander_operator::values::{self, Values};
use std::hint::black_box;

const CATALOG: &str = include_str!("../../manifests/catalog/metallb-0.12.3.yaml");

fn overrides(i: u64) -> Values {
    let text = format!(
        "configInline:\n  address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n    - 10.{}.{}.25-10.{}.{}.50\n",
        (i / 256) % 256,
        i % 256,
        (i / 256) % 256,
        i % 256
    );
    values::parse("overrides", &text).expect("valid overrides")
}

fn bench(c: &mut Criterion) {
    let app = load_app("metallb-0.12.3.yaml", CATALOG).expect("catalog loads");
    let compiled = CompiledApp::compile(&app.name, &app.definition).expect("catalog compiles");
    let release = Release {
        name: "metallb".into(),
        namespace: "kommander".into(),
    };
    let cluster = ClusterInfo {
        name: "attached-1".into(),
        ..Default::default()
    };

    let mut i = 0u64;
    c.bench_function("merge_render", |b| {
        b.iter_batched(
            || {
                i += 1;
                overrides(i)
            },
            |layer| {
                let merged = compiled.values(&[layer]);
                black_box(
                    compiled
                        .render_texts(merged, &release, &cluster)
                        .expect("renders"),
                )
            },
            BatchSize::SmallInput,
        )
    });

    let mut j = 0u64;
    c.bench_function("merge_render_parse", |b| {
        b.iter_batched(
            || {
                j += 1;
                overrides(j)
            },
            |layer| {
                let merged = compiled.values(&[layer]);
                black_box(
                    compiled
                        .render(merged, &release, &cluster)
                        .expect("renders"),
                )
            },
            BatchSize::SmallInput,
        )
    });

    c.bench_function("compile", |b| {
        b.iter(|| black_box(CompiledApp::compile(&app.name, &app.definition).expect("compiles")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
