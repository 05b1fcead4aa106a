//! Templates: any fields (Liquid in subject, MJML, HTML, text or an SMS body) and any JSON data
//! compile or are refused with errors, and a compiled template renders or fails with an error,
//! never a panic, a stack overflow or a runaway allocation.
//!
//! Input: fields separated by NUL bytes, in this order: channel (`sms`, else email), subject,
//! mjml, html, text, body, data (a JSON object; `contact` is filled in when it is not one). An
//! empty field is absent. The corpus in `fuzz/corpus/template_render` is in this format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use waymark_core::journey::{Channel, TemplateDefinition};

fn field(parts: &[&str], i: usize) -> Option<String> {
    parts
        .get(i)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
}

fn default_data() -> Map<String, Value> {
    match json!({
        "contact": {"first_name": "Ada", "email": "ada@example.com", "plan": "pro",
                    "tags": ["a", "b"], "score": 12.5, "cart": [{"name": "Mug", "price": 12}]},
        "event": {"name": "Order Completed", "properties": {"total": 30}},
        "journey": {"id": "welcome", "name": "Welcome"},
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = input.split('\0').collect();
    let channel = if parts[0].trim() == "sms" {
        Channel::Sms
    } else {
        Channel::Email
    };
    let def = TemplateDefinition {
        id: "fuzz".into(),
        channel,
        name: None,
        subject: field(&parts, 1),
        mjml: field(&parts, 2),
        html: field(&parts, 3),
        text: field(&parts, 4),
        body: field(&parts, 5),
        tracking: None,
        topic: None,
        transactional: false,
    };
    let data = match field(&parts, 6).and_then(|d| serde_json::from_str::<Value>(&d).ok()) {
        Some(Value::Object(m)) => m,
        _ => default_data(),
    };
    let Ok(template) = waymark_render::compile(&def) else {
        return;
    };
    if let Ok(rendered) = template.render(&data) {
        match channel {
            Channel::Sms => assert!(rendered.text.is_some(), "an SMS renders a body"),
            Channel::Email => {
                assert!(rendered.subject.is_some(), "an email renders a subject");
                assert!(rendered.text.is_some(), "an email always has a text part");
            }
        }
    }
});
