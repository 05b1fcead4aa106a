//! The suppression list: inbound bounce and complaint webhooks (Amazon SES through SNS,
//! Postmark, a generic JSON form), SMS STOP/START keywords, the management API, and sends to a
//! suppressed address recorded as `suppressed` while the journey goes on.

mod common;
use common::*;
use reqwest::Method;

const SECRET: &str = "test-inbound-secret-0123456789";

fn server() -> Server {
    Server::start(ServerOptions {
        env: vec![("WAYMARK_INBOUND_WEBHOOK_SECRET".into(), SECRET.into())],
        ..Default::default()
    })
}

/// Signed Up → email → 1 day → email.
fn email_journey() -> Value {
    json!({
        "id": "supp-email",
        "name": "Suppression: two emails",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "hello", "type": "send_email", "template": "supp-hello"},
            {"id": "wait", "type": "delay", "duration": "1d"},
            {"id": "again", "type": "send_email", "template": "supp-hello"}
        ],
        "edges": [
            {"from": "signed-up", "to": "hello"},
            {"from": "hello", "to": "wait"},
            {"from": "wait", "to": "again"}
        ],
        "templates": [{
            "id": "supp-hello",
            "channel": "email",
            "subject": "Hello {{ contact.first_name }}",
            "html": "<p>Hello</p>",
            "text": "Hello"
        }]
    })
}

/// Signed Up → SMS → 1 day → SMS → 1 day → SMS.
fn sms_journey() -> Value {
    json!({
        "id": "supp-sms",
        "name": "Suppression: three texts",
        "nodes": [
            {"id": "signed-up", "type": "trigger", "event": "Signed Up"},
            {"id": "text-1", "type": "send_sms", "template": "supp-text"},
            {"id": "wait-1", "type": "delay", "duration": "1d"},
            {"id": "text-2", "type": "send_sms", "template": "supp-text"},
            {"id": "wait-2", "type": "delay", "duration": "1d"},
            {"id": "text-3", "type": "send_sms", "template": "supp-text"}
        ],
        "edges": [
            {"from": "signed-up", "to": "text-1"},
            {"from": "text-1", "to": "wait-1"},
            {"from": "wait-1", "to": "text-2"},
            {"from": "text-2", "to": "wait-2"},
            {"from": "wait-2", "to": "text-3"}
        ],
        "templates": [{"id": "supp-text", "channel": "sms", "body": "Hi from Acme"}]
    })
}

/// An SNS `Notification` envelope carrying an SES event, as SNS posts it.
fn sns_notification(message: Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Message": message.to_string(),
        "Timestamp": "2026-11-23T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:ses-feedback:a1b2"
    })
}

fn ses_bounce(bounce_type: &str, addresses: &[&str]) -> Value {
    let recipients: Vec<Value> = addresses
        .iter()
        .map(|a| {
            json!({
                "emailAddress": a,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown"
            })
        })
        .collect();
    sns_notification(json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": recipients,
            "timestamp": "2026-11-23T10:00:00.000Z",
            "feedbackId": "0100017c-bounce",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"
        },
        "mail": {
            "timestamp": "2026-11-23T09:59:58.000Z",
            "source": "news@acme.test",
            "messageId": "0100017c-mail",
            "destination": addresses
        }
    }))
}

/// SNS posts JSON as `text/plain`.
fn post_ses(s: &Server, token: &str, body: &Value) -> Resp {
    s.send(
        s.request(Method::POST, &format!("/v1/webhooks/ses?token={token}"))
            .header("content-type", "text/plain; charset=UTF-8")
            .header(
                "x-amz-sns-message-type",
                body["Type"].as_str().unwrap_or(""),
            )
            .body(body.to_string()),
    )
}

fn post_postmark(s: &Server, password: &str, body: &Value) -> Resp {
    s.send(
        s.request(Method::POST, "/v1/webhooks/postmark")
            .basic_auth("postmark", Some(password))
            .json(body),
    )
}

fn post_generic(s: &Server, token: &str, body: &Value) -> Resp {
    s.send(
        s.request(Method::POST, "/v1/webhooks/suppressions")
            .bearer_auth(token)
            .json(body),
    )
}

fn post_sms(s: &Server, token: &str, from: &str, body: &str) -> Resp {
    s.send(
        s.request(
            Method::POST,
            &format!("/v1/webhooks/twilio/inbound?token={token}"),
        )
        .form(&[
            ("MessageSid", format!("SM{}", body.len()).as_str()),
            ("AccountSid", "AC123"),
            ("From", from),
            ("To", "+14155550111"),
            ("Body", body),
        ]),
    )
}

fn suppression(s: &Server, channel: &str, address: &str) -> Option<Value> {
    let body = s
        .admin_get(&format!(
            "/v1/suppressions?channel={channel}&address={}",
            address.replace('+', "%2B")
        ))
        .ok();
    body["suppressions"].as_array().unwrap().first().cloned()
}

fn event_names(s: &Server, user: &str) -> Vec<String> {
    let id = s.contact_by_user(user)["id"].as_i64().unwrap();
    s.timeline(id)
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn ses_permanent_bounce_suppresses_the_address_and_the_next_email_is_suppressed() {
    let s = server();
    s.apply_journey(email_journey());
    s.identify(
        "ann",
        json!({"email": "Ann@Example.com", "first_name": "Ann"}),
    )
    .ok();
    s.settle();

    let r = post_ses(&s, SECRET, &ses_bounce("Permanent", &["ann@example.com"])).ok();
    assert_eq!(r["results"][0]["action"], "suppressed", "{r:#}");
    let entry = suppression(&s, "email", "ANN@example.com").expect("suppressed");
    assert_eq!(
        (entry["reason"].as_str(), entry["source"].as_str()),
        (Some("hard_bounce"), Some("ses"))
    );
    // SNS retries deliver the same notification again: still one entry, one event.
    post_ses(&s, SECRET, &ses_bounce("Permanent", &["ann@example.com"])).ok();
    s.settle();
    let names = event_names(&s, "ann");
    assert_eq!(
        names.iter().filter(|n| *n == "Email Bounced").count(),
        1,
        "{names:?}"
    );

    s.track("ann", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(DAY);
    let messages = s.messages("ann");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for m in &messages {
        assert_eq!(m["status"], "suppressed", "{m:#}");
        assert_eq!(m["error"], "address suppressed: hard_bounce", "{m:#}");
    }
    assert_eq!(s.node_stats("supp-email", "hello")["suppressed"], 1);
    assert_eq!(s.node_stats("supp-email", "again")["suppressed"], 1);
    assert_eq!(
        s.contact_by_user("ann")["enrollments"][0]["status"],
        "completed"
    );

    // A transient bounce is recorded on the timeline but suppresses nothing.
    s.identify("bob", json!({"email": "bob@example.com"})).ok();
    s.settle();
    let r = post_ses(&s, SECRET, &ses_bounce("Transient", &["bob@example.com"])).ok();
    assert_eq!(r["results"][0]["action"], "recorded", "{r:#}");
    assert!(suppression(&s, "email", "bob@example.com").is_none());
    s.settle();
    assert!(event_names(&s, "bob").contains(&"Email Bounced".to_string()));
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();
    assert_eq!(s.messages("bob")[0]["status"], "sent");
}

#[test]
fn ses_complaint_and_subscription_confirmation() {
    let s = server();
    let confirm = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:ses-feedback.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:ses-feedback&Token=2336412f37",
        "Timestamp": "2026-11-23T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
    });
    let r = post_ses(&s, SECRET, &confirm).ok();
    assert_eq!(r["status"], "confirmation_required", "{r:#}");
    assert_eq!(r["subscribe_url"], confirm["SubscribeURL"]);
    assert!(
        s.all_output()
            .contains("Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1"),
        "the SubscribeURL is logged for the operator"
    );

    s.identify("cid", json!({"email": "cid@example.com"})).ok();
    s.settle();
    let complaint = sns_notification(json!({
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "\"Cid\" <cid@example.com>"}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-23T10:00:00.000Z",
            "feedbackId": "0100017c-complaint"
        },
        "mail": {"messageId": "0100017c-mail", "destination": ["cid@example.com"]}
    }));
    post_ses(&s, SECRET, &complaint).ok();
    let entry = suppression(&s, "email", "cid@example.com").expect("suppressed");
    assert_eq!(entry["reason"], "complaint");
    s.settle();
    assert!(event_names(&s, "cid").contains(&"Email Complained".to_string()));

    // Malformed: no Type, a Message that is not JSON, a recipient that is not an address.
    let e = post_ses(&s, SECRET, &json!({"Message": "{}"})).expect_error(400, "invalid_webhook");
    assert_eq!(e["field"], "Type");
    let mut bad = sns_notification(json!({}));
    bad["Message"] = json!("not json");
    let e = post_ses(&s, SECRET, &bad).expect_error(400, "invalid_webhook");
    assert_eq!(e["field"], "Message");
    let e = post_ses(&s, SECRET, &ses_bounce("Permanent", &["not-an-address"])).expect(400);
    assert_eq!(
        e["field"],
        "Message.bounce.bouncedRecipients[0].emailAddress"
    );
    let r = s.send(
        s.request(Method::POST, &format!("/v1/webhooks/ses?token={SECRET}"))
            .body("{not json"),
    );
    r.expect_error(400, "invalid_json");
}

#[test]
fn postmark_hard_bounce_and_spam_complaint() {
    let s = server();
    s.identify("dee", json!({"email": "dee@example.com"})).ok();
    s.settle();
    let bounce = json!({
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807u64,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "welcome",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "dee@example.com",
        "From": "news@acme.test",
        "BouncedAt": "2026-11-23T10:00:00Z",
        "Inactive": true,
        "CanActivate": true,
        "Subject": "Welcome"
    });
    let r = post_postmark(&s, SECRET, &bounce).ok();
    assert_eq!(r["results"][0]["action"], "suppressed", "{r:#}");
    let entry = suppression(&s, "email", "dee@example.com").expect("suppressed");
    assert_eq!(
        (entry["reason"].as_str(), entry["source"].as_str()),
        (Some("hard_bounce"), Some("postmark"))
    );

    // A soft bounce is only recorded.
    let mut soft = bounce.clone();
    soft["Type"] = json!("SoftBounce");
    soft["Email"] = json!("eve@example.com");
    let r = post_postmark(&s, SECRET, &soft).ok();
    assert_eq!(r["results"][0]["action"], "recorded", "{r:#}");
    assert!(suppression(&s, "email", "eve@example.com").is_none());

    let complaint = json!({
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": "dee@example.com",
        "From": "news@acme.test",
        "BouncedAt": "2026-11-23T11:00:00Z"
    });
    post_postmark(&s, SECRET, &complaint).ok();
    assert_eq!(
        suppression(&s, "email", "dee@example.com").unwrap()["reason"],
        "complaint"
    );
    s.settle();
    let names = event_names(&s, "dee");
    assert!(
        names.contains(&"Email Bounced".to_string())
            && names.contains(&"Email Complained".to_string()),
        "{names:?}"
    );

    // Deliveries and opens are not about suppression.
    let r = post_postmark(
        &s,
        SECRET,
        &json!({"RecordType": "Delivery", "Email": "x@y.z"}),
    )
    .ok();
    assert_eq!(r["status"], "ignored");
    let e = post_postmark(
        &s,
        SECRET,
        &json!({"RecordType": "Bounce", "Type": "HardBounce"}),
    )
    .expect_error(400, "invalid_webhook");
    assert_eq!(e["field"], "Email");
    post_postmark(&s, "wrong", &bounce).expect_error(401, "unauthorized");
}

#[test]
fn generic_form_validates_everything_before_applying_anything() {
    let s = server();
    s.identify(
        "fay",
        json!({"email": "fay@example.com", "phone": "+14155551234"}),
    )
    .ok();
    s.settle();
    let e = post_generic(
        &s,
        SECRET,
        &json!({"events": [
            {"type": "bounce", "address": "fay@example.com"},
            {"type": "unsubscribe", "channel": "sms", "address": "5551234567"}
        ]}),
    )
    .expect_error(400, "invalid_address");
    assert_eq!(e["field"], "events[1].address");
    assert!(suppression(&s, "email", "fay@example.com").is_none());
    for (body, field) in [
        (json!({}), "events"),
        (json!({"events": []}), "events"),
        (
            json!({"events": [{"type": "bounced", "address": "a@b.co"}]}),
            "events[0].type",
        ),
        (
            json!({"events": [{"type": "bounce", "channel": "fax", "address": "a@b.co"}]}),
            "events[0].channel",
        ),
        (json!({"events": [{"type": "bounce"}]}), "events[0].address"),
    ] {
        let e = post_generic(&s, SECRET, &body).expect(400);
        assert_eq!(e["field"], field, "{body}: {e:#}");
    }

    let r = post_generic(
        &s,
        SECRET,
        &json!({"events": [
            {"type": "bounce", "address": "Fay@Example.com"},
            {"type": "complaint", "channel": "email", "address": "gus@example.com"},
            {"type": "unsubscribe", "channel": "sms", "address": "+1 415 555 1234"}
        ]}),
    )
    .ok();
    assert_eq!(r["results"].as_array().unwrap().len(), 3, "{r:#}");
    assert_eq!(
        suppression(&s, "email", "fay@example.com").unwrap()["reason"],
        "hard_bounce"
    );
    assert_eq!(
        suppression(&s, "email", "gus@example.com").unwrap()["reason"],
        "complaint"
    );
    let sms = suppression(&s, "sms", "+14155551234").expect("number suppressed");
    assert_eq!(
        (sms["reason"].as_str(), sms["source"].as_str()),
        (Some("unsubscribe"), Some("webhook"))
    );
    s.settle();
    let names = event_names(&s, "fay");
    assert!(
        names.contains(&"Email Bounced".to_string())
            && names.contains(&"SMS Opted Out".to_string()),
        "{names:?}"
    );
}

#[test]
fn inbound_webhooks_need_the_secret() {
    let s = server();
    let bounce = ses_bounce("Permanent", &["hal@example.com"]);
    post_ses(&s, "wrong-secret", &bounce).expect_error(401, "unauthorized");
    s.send(
        s.request(Method::POST, "/v1/webhooks/ses")
            .body(bounce.to_string()),
    )
    .expect_error(401, "unauthorized");
    // The admin token is not the inbound secret.
    post_generic(
        &s,
        ADMIN_TOKEN,
        &json!({"events": [{"type": "bounce", "address": "hal@example.com"}]}),
    )
    .expect_error(401, "unauthorized");
    post_postmark(
        &s,
        "nope",
        &json!({"RecordType": "SpamComplaint", "Email": "hal@example.com"}),
    )
    .expect_error(401, "unauthorized");
    post_sms(&s, "nope", "+14155557654", "STOP").expect_error(401, "unauthorized");
    assert!(suppression(&s, "email", "hal@example.com").is_none());
    assert!(suppression(&s, "sms", "+14155557654").is_none());
    // Basic auth and ?token= work on the generic form too.
    s.send(
        s.request(Method::POST, "/v1/webhooks/suppressions")
            .basic_auth("any", Some(SECRET))
            .json(&json!({"events": [{"type": "bounce", "address": "hal@example.com"}]})),
    )
    .ok();
    assert!(suppression(&s, "email", "hal@example.com").is_some());
}

#[test]
fn sms_stop_suppresses_the_number_and_start_lifts_it() {
    let s = server();
    s.apply_journey(sms_journey());
    let phone = "+14155557654";
    s.identify("ida", json!({"phone": phone, "first_name": "Ida"}))
        .ok();
    s.settle();

    let r = post_sms(&s, SECRET, phone, " stop ");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/xml")
    );
    assert!(r.text.contains("<Response/>"), "{}", r.text);
    let entry = suppression(&s, "sms", phone).expect("number suppressed");
    assert_eq!(
        (entry["reason"].as_str(), entry["source"].as_str()),
        (Some("unsubscribe"), Some("twilio"))
    );

    s.track("ida", "Signed Up", json!({})).ok();
    s.settle();
    s.advance(DAY);
    let messages = s.messages("ida");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for m in &messages {
        assert_eq!(m["status"], "suppressed", "{m:#}");
        assert_eq!(m["error"], "address suppressed: unsubscribe", "{m:#}");
    }
    assert_eq!(s.node_stats("supp-sms", "text-2")["suppressed"], 1);

    // Any other text changes nothing.
    post_sms(&s, SECRET, phone, "what is this?").expect(200);
    assert!(suppression(&s, "sms", phone).is_some());

    post_sms(&s, SECRET, phone, "START").expect(200);
    assert!(suppression(&s, "sms", phone).is_none());
    s.advance(DAY);
    let messages = s.messages("ida");
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[2]["status"], "sent", "{:#}", messages[2]);

    let names = event_names(&s, "ida");
    assert!(
        names.contains(&"SMS Opted Out".to_string()) && names.contains(&"SMS Opted In".to_string()),
        "{names:?}"
    );
    let e = s
        .send(
            s.request(
                Method::POST,
                &format!("/v1/webhooks/twilio/inbound?token={SECRET}"),
            )
            .form(&[("From", "555"), ("Body", "STOP")]),
        )
        .expect_error(400, "invalid_address");
    assert_eq!(e["field"], "From");
}

#[test]
fn suppression_list_management() {
    let s = server();
    let created = s
        .admin_post(
            "/v1/suppressions",
            json!({"channel": "email", "address": " Jo@Example.com "}),
        )
        .expect(201);
    assert_eq!(
        (
            created["address"].as_str(),
            created["reason"].as_str(),
            created["source"].as_str()
        ),
        (Some("jo@example.com"), Some("manual"), Some("api"))
    );
    s.admin_post(
        "/v1/suppressions",
        json!({"channel": "email", "address": "jo@example.com", "reason": "unsubscribe"}),
    )
    .expect(200);
    s.admin_post(
        "/v1/suppressions",
        json!({"channel": "sms", "address": "+447911123456", "reason": "complaint"}),
    )
    .expect(201);
    for (body, field) in [
        (json!({"channel": "email", "address": "nope"}), "address"),
        (
            json!({"channel": "sms", "address": "07700900123"}),
            "address",
        ),
        (json!({"channel": "fax", "address": "a@b.co"}), "channel"),
        (json!({"address": "a@b.co"}), "channel"),
        (
            json!({"channel": "email", "address": "a@b.co", "reason": "tired"}),
            "reason",
        ),
    ] {
        let e = s.admin_post("/v1/suppressions", body.clone()).expect(400);
        assert_eq!(e["field"], field, "{body}: {e:#}");
    }

    let all = s.admin_get("/v1/suppressions").ok();
    assert_eq!(all["suppressions"].as_array().unwrap().len(), 2, "{all:#}");
    let email = s.admin_get("/v1/suppressions?channel=email").ok();
    assert_eq!(email["suppressions"].as_array().unwrap().len(), 1);
    assert_eq!(email["suppressions"][0]["reason"], "unsubscribe");
    let by_address = s.admin_get("/v1/suppressions?address=JO@example.com").ok();
    assert_eq!(by_address["suppressions"][0]["channel"], "email");
    s.admin_get("/v1/suppressions?channel=fax").expect(400);

    s.admin_delete("/v1/suppressions/email/JO@example.com", None)
        .expect(204);
    s.admin_delete("/v1/suppressions/email/jo@example.com", None)
        .expect_error(404, "not_found");
    s.admin_delete("/v1/suppressions/sms/%2B447911123456", None)
        .expect(204);
    let all = s.admin_get("/v1/suppressions").ok();
    assert!(all["suppressions"].as_array().unwrap().is_empty());

    s.send(s.request(Method::GET, "/v1/suppressions"))
        .expect_error(401, "unauthorized");
    // The inbound secret does not open the management API.
    s.send(
        s.request(Method::GET, "/v1/suppressions")
            .bearer_auth(SECRET),
    )
    .expect_error(401, "unauthorized");
}

/// Per node and for the whole journey: a sent email is delivered until a provider reports it
/// bounced; statistics of one version (`?version=`) count its enrollments' messages only.
#[test]
fn a_later_bounce_is_not_delivered_and_versions_are_counted_apart() {
    let s = server();
    s.apply_journey(email_journey());
    s.identify("ann", json!({"email": "ann@example.com"})).ok();
    s.track("ann", "Signed Up", json!({})).ok();
    s.settle();
    let hello = s.node_stats("supp-email", "hello");
    assert_eq!(
        (hello["sent"].as_i64(), hello["delivered"].as_i64()),
        (Some(1), Some(1)),
        "{hello}"
    );

    // Version 2 (another name), which bob enters.
    let mut second = email_journey();
    second["name"] = json!("Suppression: two emails, again");
    assert_eq!(s.apply_journey(second)["live_version"], 2);
    s.identify("bob", json!({"email": "bob@example.com"})).ok();
    s.track("bob", "Signed Up", json!({})).ok();
    s.settle();

    // The provider reports later that ann's email bounced.
    post_generic(
        &s,
        SECRET,
        &json!({"events": [{"type": "bounce", "address": "Ann@example.com"}]}),
    )
    .ok();
    s.settle();
    let ann = s.messages("ann");
    assert_eq!(ann[0]["status"], "bounced", "{ann:#?}");
    assert!(
        ann[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("bounced after it was sent"),
        "{ann:#?}"
    );

    let stats = |query: &str| {
        s.admin_get(&format!("/v1/journeys/supp-email/stats{query}"))
            .ok()
    };
    let figures = |v: &Value| {
        [
            "entered",
            "sent",
            "delivered",
            "bounced",
            "failed",
            "suppressed",
        ]
        .map(|k| v[k].as_i64().unwrap())
    };
    let hello = |v: &Value| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == "hello")
            .unwrap()
            .clone()
    };
    let all = stats("");
    assert_eq!(all["version"], Value::Null);
    assert_eq!(figures(&all), [2, 2, 1, 1, 0, 0], "{all:#}");
    assert_eq!(figures(&hello(&all)), [2, 2, 1, 1, 0, 0], "{all:#}");
    let one = stats("?version=1");
    assert_eq!(one["version"], 1);
    assert_eq!(figures(&one), [1, 1, 0, 1, 0, 0], "{one:#}");
    assert_eq!(figures(&hello(&one)), [1, 1, 0, 1, 0, 0], "{one:#}");
    let two = stats("?version=2");
    assert_eq!(figures(&two), [1, 1, 1, 0, 0, 0], "{two:#}");
    assert_eq!(hello(&two)["waiting"], 0);
    assert_eq!(
        two["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == "wait")
            .unwrap()["waiting"],
        1
    );

    // An unknown version is an error, not the totals.
    s.admin_get("/v1/journeys/supp-email/stats?version=3")
        .expect_error(404, "not_found");
    let bad = s.admin_get("/v1/journeys/supp-email/stats?version=two");
    assert_eq!(bad.status, 400);
}
