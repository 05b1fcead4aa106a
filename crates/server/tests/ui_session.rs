//! The web app's sign-in over HTTP: the admin token is exchanged for an HTTP-only,
//! SameSite=Strict session cookie that opens the admin routes; state-changing requests made
//! with it need the session's CSRF token; sign-out ends it. Also the app's routing (the page
//! for browsers, JSON 404 for API clients) and the journey gallery.

mod common;
use common::*;

use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, SET_COOKIE};

fn set_cookie(r: &Response) -> String {
    r.headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Signs in; returns (the `Cookie` header value, the CSRF token, the `Set-Cookie` header).
fn sign_in(s: &Server, extra: &[(&str, &str)]) -> (String, String, String) {
    let mut req = s
        .request(Method::POST, "/v1/session")
        .json(&json!({ "token": ADMIN_TOKEN }));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("sign in");
    assert_eq!(r.status(), 200);
    let cookie = set_cookie(&r);
    let body: Value = r.json().unwrap();
    assert_eq!(body["signed_in"], true);
    let csrf = body["csrf_token"].as_str().expect("csrf token").to_string();
    let pair = cookie.split(';').next().unwrap().trim().to_string();
    (pair, csrf, cookie)
}

#[test]
fn sign_in_sets_an_http_only_strict_cookie_that_opens_admin_routes() {
    let s = Server::simulated();
    // Wrong or missing token.
    let r = s.send(
        s.request(Method::POST, "/v1/session")
            .json(&json!({ "token": "nope" })),
    );
    r.expect_error(401, "unauthorized");
    s.send(s.request(Method::POST, "/v1/session").json(&json!({})))
        .expect_error(401, "unauthorized");
    // Not signed in: no cookie, and the session endpoint says so without an error.
    let r = s.get("/v1/session").ok();
    assert_eq!(r["signed_in"], false);
    s.get("/v1/journeys").expect_error(401, "unauthorized");

    let (cookie, csrf, header) = sign_in(&s, &[]);
    assert!(cookie.starts_with("waymark_session="), "{header}");
    assert!(cookie.len() > "waymark_session=".len() + 32, "{header}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(header.contains(attr), "{attr} missing: {header}");
    }
    // Served over plain http: not Secure (the browser would drop it).
    assert!(!header.contains("Secure"), "{header}");

    let r = s.send(
        s.request(Method::GET, "/v1/journeys")
            .header(COOKIE, &cookie),
    );
    assert_eq!(r.expect(200)["journeys"], json!([]));
    let me = s.send(
        s.request(Method::GET, "/v1/session")
            .header(COOKIE, &cookie),
    );
    let me = me.ok();
    assert_eq!(me["signed_in"], true);
    assert_eq!(me["via"], "cookie");
    assert_eq!(me["csrf_token"], csrf.as_str());
    // Another cookie in the header does not matter; a forged session id does.
    let both = format!("theme=dark; {cookie}; other=1");
    s.send(s.request(Method::GET, "/v1/templates").header(COOKIE, both))
        .expect(200);
    s.send(
        s.request(Method::GET, "/v1/templates")
            .header(COOKIE, "waymark_session=0123456789abcdef"),
    )
    .expect_error(401, "unauthorized");
    // The bearer token still works alone, and the session endpoint accepts it too.
    assert_eq!(s.admin_get("/v1/session").ok()["via"], "bearer");
}

#[test]
fn state_changing_requests_with_the_cookie_need_the_csrf_token() {
    let s = Server::simulated();
    let (cookie, csrf, _) = sign_in(&s, &[]);
    let doc = json!({ "id": "j1", "name": "J1", "nodes": [] });
    let r = s.send(
        s.request(Method::POST, "/v1/journeys")
            .header(COOKIE, &cookie)
            .json(&doc),
    );
    let e = r.expect_error(403, "csrf_failed");
    assert!(e["message"].as_str().unwrap().contains("X-Waymark-CSRF"));
    s.send(
        s.request(Method::POST, "/v1/journeys")
            .header(COOKIE, &cookie)
            .header("X-Waymark-CSRF", "not-the-token")
            .json(&doc),
    )
    .expect_error(403, "csrf_failed");
    // Nothing was created.
    assert_eq!(s.admin_get("/v1/journeys").ok()["journeys"], json!([]));
    s.send(
        s.request(Method::POST, "/v1/journeys")
            .header(COOKIE, &cookie)
            .header("X-Waymark-CSRF", &csrf)
            .json(&doc),
    )
    .expect(201);
    // The simulated clock is a state change too.
    s.send(
        s.request(Method::POST, "/v1/clock/advance")
            .header(COOKIE, &cookie)
            .json(&json!({ "seconds": 60 })),
    )
    .expect_error(403, "csrf_failed");
    // A bearer token needs no CSRF token (browsers never send it by themselves).
    s.admin_put(
        "/v1/journeys/j1",
        json!({ "id": "j1", "name": "J1b", "nodes": [] }),
    )
    .ok();
    // A wrong bearer token is not rescued by a valid cookie.
    s.send(
        s.request(Method::GET, "/v1/journeys")
            .header(COOKIE, &cookie)
            .bearer_auth("wrong"),
    )
    .expect_error(401, "unauthorized");
}

#[test]
fn sign_out_ends_the_session_and_clears_the_cookie() {
    let s = Server::simulated();
    let (cookie, csrf, _) = sign_in(&s, &[]);
    let (other, _, _) = sign_in(&s, &[]);
    assert_ne!(cookie, other, "each sign-in gets its own session");
    s.send(
        s.request(Method::DELETE, "/v1/session")
            .header(COOKIE, &cookie),
    )
    .expect_error(403, "csrf_failed");
    let r = s
        .request(Method::DELETE, "/v1/session")
        .header(COOKIE, &cookie)
        .header("X-Waymark-CSRF", &csrf)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = set_cookie(&r);
    assert!(cleared.starts_with("waymark_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    s.send(
        s.request(Method::GET, "/v1/journeys")
            .header(COOKIE, &cookie),
    )
    .expect_error(401, "unauthorized");
    let me = s.send(
        s.request(Method::GET, "/v1/session")
            .header(COOKIE, &cookie),
    );
    assert_eq!(me.ok()["signed_in"], false);
    // The other session lives on.
    s.send(
        s.request(Method::GET, "/v1/journeys")
            .header(COOKIE, &other),
    )
    .expect(200);
    // Sign-out without any session is refused like any admin route.
    s.send(s.request(Method::DELETE, "/v1/session"))
        .expect_error(401, "unauthorized");
}

#[test]
fn the_cookie_is_secure_behind_https() {
    // A proxy that terminates TLS says so.
    let s = Server::simulated();
    let (_, _, header) = sign_in(&s, &[("X-Forwarded-Proto", "https")]);
    assert!(header.contains("; Secure"), "{header}");
    // So does an https public URL.
    let s = Server::start(ServerOptions {
        args: vec!["--public-url".into(), "https://mail.example.com".into()],
        ..Default::default()
    });
    let (_, _, header) = sign_in(&s, &[]);
    assert!(header.contains("; Secure"), "{header}");
}

#[test]
fn browsers_get_the_app_and_api_clients_keep_json_404() {
    let s = Server::simulated();
    for path in ["/", "/journeys", "/journeys/abandoned-cart", "/contacts/12"] {
        let r = s
            .request(Method::GET, path)
            .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ctype = r.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let text = r.text().unwrap();
        assert!(
            text.contains("<html") || text.contains("<!doctype html>"),
            "{text}"
        );
    }
    // API paths and clients that do not ask for HTML: the JSON 404.
    for (path, accept) in [
        ("/v1/nope", "text/html"),
        ("/t/x", "text/html"),
        ("/", "*/*"),
        ("/journeys", "application/json"),
    ] {
        let r = s.send(s.request(Method::GET, path).header(ACCEPT, accept));
        r.expect_error(404, "not_found");
    }
    s.send(
        s.request(Method::POST, "/journeys")
            .header(ACCEPT, "text/html"),
    )
    .expect_error(404, "not_found");
}

#[test]
fn the_gallery_lists_every_example_journey() {
    let s = Server::simulated();
    s.get("/v1/journey-templates")
        .expect_error(401, "unauthorized");
    let body = s.admin_get("/v1/journey-templates").ok();
    let items = body["templates"].as_array().expect("templates");
    let dir = repo_root().join("examples/journeys");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<String> = items
        .iter()
        .map(|i| i["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, files);
    for item in items {
        let file = item["file"].as_str().unwrap();
        let expected = example_json(file.trim_end_matches(".yaml"));
        assert_eq!(item["document"], expected, "{file}");
        assert_eq!(item["id"], expected["id"]);
        assert!(item["name"].is_string(), "{file}");
    }
}

#[test]
fn the_openapi_document_describes_the_session_endpoints() {
    let s = Server::simulated();
    let doc = s.get("/v1/openapi.json").ok();
    for (method, path) in [
        ("post", "/v1/session"),
        ("get", "/v1/session"),
        ("delete", "/v1/session"),
        ("get", "/v1/journey-templates"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["sessionCookie"]["in"],
        "cookie"
    );
    assert!(doc["paths"]["/v1/session"]["post"]["responses"]["429"].is_object());
}

#[test]
fn sign_in_is_locked_out_after_five_wrong_tokens_from_an_address() {
    let s = Server::simulated();
    let attempt = |token: &str| {
        s.request(Method::POST, "/v1/session")
            .json(&json!({ "token": token }))
            .send()
            .expect("sign in")
    };
    for i in 0..5 {
        let r = attempt(&format!("guess-{i}"));
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // Locked out: even the right token is refused, with the time to wait.
    let r = attempt(ADMIN_TOKEN);
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().unwrap();
    assert_eq!(body["code"], "too_many_attempts", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("locked"),
        "{body}"
    );
    assert_eq!(attempt("guess-6").status(), 429);
}
