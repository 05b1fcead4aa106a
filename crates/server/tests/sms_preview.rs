//! The preview of an SMS template shows its encoding (GSM-7 or UCS-2) and how many segments it
//! is sent (and billed) as, after personalisation.

mod common;
use common::*;

#[test]
fn sms_preview_shows_encoding_and_segments() {
    let s = Server::simulated();
    s.admin_put(
        "/v1/templates/sms-promo",
        json!({ "channel": "sms", "body": "Hi {{ contact.first_name }}, {{ event.offer }}" }),
    )
    .expect(201);
    let preview = |contact: Value, offer: String| {
        s.admin_post(
            "/v1/templates/sms-promo/preview",
            json!({ "contact": contact, "event": { "offer": offer } }),
        )
        .ok()
    };

    // "Hi Ann, " is 8 septets: 152 more make exactly 160, one segment.
    let p = preview(json!({"first_name": "Ann"}), "a".repeat(152));
    assert_eq!(p["text"].as_str().map(str::len), Some(160), "{p}");
    assert_eq!(
        p["sms"],
        json!({"encoding": "GSM-7", "characters": 160, "segments": 1}),
        "{p}"
    );

    // One more septet: two parts of at most 153.
    let p = preview(json!({"first_name": "Ann"}), "a".repeat(153));
    assert_eq!(
        p["sms"],
        json!({"encoding": "GSM-7", "characters": 161, "segments": 2}),
        "{p}"
    );

    // `€` is in the GSM extension table and counts two septets.
    let p = preview(json!({"first_name": "Ann"}), "10€ off".into());
    assert_eq!(
        p["sms"],
        json!({"encoding": "GSM-7", "characters": 16, "segments": 1}),
        "{p}"
    );

    // A name outside the GSM set (personalisation counts) switches the text to UCS-2.
    let p = preview(json!({"first_name": "Zoë 🎉"}), "a".repeat(60));
    assert_eq!(
        p["sms"],
        json!({"encoding": "UCS-2", "characters": 71, "segments": 2}),
        "{p}"
    );

    // Email previews have no `sms` part.
    s.admin_put(
        "/v1/templates/mail",
        json!({ "channel": "email", "subject": "Hi", "html": "<p>Hi</p>" }),
    )
    .expect(201);
    let p = s.admin_post("/v1/templates/mail/preview", json!({})).ok();
    assert!(p.get("sms").is_none(), "{p}");
}
