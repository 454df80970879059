//! What one copy of a campaign costs to fill in: an MJML newsletter compiled once, then
//! filled with each contact's variables (HTML, the text part derived from it, the subject).
//! Prints the median of several runs per step, and the compile for comparison.
//!
//! cargo bench -p kuvert-template --bench render [-- --copies N --runs R]

use std::time::Instant;

use kuvert_template::{Engine, Source, compile};
use serde_json::json;

fn newsletter() -> String {
    let mut sections = String::new();
    for i in 0..6 {
        sections.push_str(&format!(
            r#"<mj-section><mj-column>
  <mj-image src="https://shop.example/img/{i}.png" alt="Item {i}" />
  <mj-text font-size="18px">Story {i} for {{{{first_name}}}}</mj-text>
  <mj-text>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor
    incididunt ut labore et dolore magna aliqua. {{{{#if vip}}}}As a member you save 10 %.{{{{/if}}}}</mj-text>
  <mj-button href="https://shop.example/story/{i}?c={{{{contact_id}}}}">Read more</mj-button>
</mj-column></mj-section>"#
        ));
    }
    format!(
        r#"<mjml><mj-head><mj-title>News for {{{{first_name}}}}</mj-title></mj-head><mj-body>
<mj-section><mj-column><mj-text font-size="24px">Hello {{{{first_name}}}} {{{{last_name}}}},</mj-text>
<mj-text>Your picks: {{{{#each picks}}}}<b>{{{{this}}}}</b> {{{{/each}}}}</mj-text></mj-column></mj-section>
{sections}
<mj-section><mj-column><mj-text><a href="{{{{unsubscribe_url}}}}">Unsubscribe</a> · {{{{city}}}}</mj-text></mj-column></mj-section>
</mj-body></mjml>"#
    )
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let copies = arg("--copies", 2000);
    let runs = arg("--runs", 5);
    let source = Source {
        engine: Engine::Mjml,
        content: newsletter(),
        text: None,
        subject: Some("{{first_name}}, this week's news".into()),
        defaults: Default::default(),
    };
    let mut compile_ms = Vec::new();
    let mut compiled = None;
    for _ in 0..runs {
        let t = Instant::now();
        compiled = Some(compile(source.clone()).expect("compiles"));
        compile_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let compiled = compiled.expect("ran");
    let prepared = compiled.prepare().expect("prepares");
    let data: Vec<serde_json::Value> = (0..copies)
        .map(|i| {
            json!({"first_name": format!("Ann{i}"), "last_name": "Example", "vip": i % 3 == 0,
                "contact_id": format!("con_{i:08}"), "city": "Berlin", "picks": ["tea", "scones", "jam"]})
        })
        .collect();
    let mut per_copy_us = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        for d in &data {
            let r = prepared.render(d).expect("renders");
            bytes = r.html.len() + r.text.len();
        }
        per_copy_us.push(t.elapsed().as_secs_f64() * 1e6 / copies as f64);
    }
    let mut prepare_us = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let _ = compiled.prepare().expect("prepares");
        prepare_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "source {} bytes of MJML, compiled HTML {} bytes, one copy {} bytes (HTML + text)",
        source.content.len(),
        compiled.html.len(),
        bytes
    );
    println!(
        "compile (MJML to HTML, once a version): median {:.2} ms of {runs}",
        median(compile_ms)
    );
    println!(
        "prepare (parse Handlebars, once a send or campaign): median {:.0} µs of {runs}",
        median(prepare_us)
    );
    let m = median(per_copy_us);
    println!(
        "render one copy (variables, text part, subject): median {m:.1} µs of {runs} runs of {copies} copies = {:.0} copies/s on one core",
        1e6 / m
    );
}
