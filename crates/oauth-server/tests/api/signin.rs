//! Sign-in and consent outside demo mode.

use oauth_server::domain::pkce::challenge_for;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The value of a hidden form field.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// `name=value` of a Set-Cookie header with that name.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

struct Flow {
    app: TestApp,
    client: Registered,
    redirect: &'static str,
}

impl Flow {
    /// A public client whose one redirect URI is on loopback (as desktop MCP clients are).
    async fn new() -> Self {
        Self::with_redirect(REDIRECT).await
    }

    async fn with_redirect(redirect: &'static str) -> Self {
        let app = spawn_signin().await;
        let res = app
            .register(json!({"client_name": "Note Taker", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"}))
            .await;
        let id = res.json::<serde_json::Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            app,
            client: Registered { id, secret: None },
            redirect,
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", self.client.id.clone()),
            ("redirect_uri", self.redirect.into()),
            ("code_challenge", challenge_for(VERIFIER)),
            ("code_challenge_method", "S256".into()),
            ("scope", "read write".into()),
            ("state", "s-42".into()),
        ]
    }

    async fn authorize(&self, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .get(self.app.url("/oauth/authorize"))
            .query(&self.query());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("cookie", cookie)
            .form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }

    /// Signs alice in; returns the session cookie.
    async fn sign_in(&self) -> String {
        let page = self.authorize(None).await;
        let csrf_cookie = cookie_pair(&set_cookie(&page, "oauth_csrf").unwrap());
        let html = page.text().await.unwrap();
        let res = self
            .post(
                "/oauth/signin",
                &csrf_cookie,
                &[
                    ("request", &field(&html, "request")),
                    ("csrf", &field(&html, "csrf")),
                    ("username", "alice"),
                    ("password", ALICE_PASSWORD),
                ],
                Some(&self.app.base),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(
            res.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/oauth/authorize?")
        );
        let session = set_cookie(&res, "oauth_session").expect("a session cookie");
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Lax"),
            "{session}"
        );
        cookie_pair(&session)
    }
}

#[tokio::test]
async fn the_sign_in_page_names_the_client_and_cannot_be_framed() {
    let flow = Flow::new().await;
    let res = flow.authorize(None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Note Taker") && html.contains("127.0.0.1:8080"),
        "client name and redirect host"
    );
    assert!(!html.contains("<script"), "no script");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let flow = Flow::new().await;
    let page = flow.authorize(None).await;
    let csrf_cookie = cookie_pair(&set_cookie(&page, "oauth_csrf").unwrap());
    let html = page.text().await.unwrap();
    let (request, csrf) = (field(&html, "request"), field(&html, "csrf"));
    let mut answers = Vec::new();
    for (user, password) in [("alice", "wrong password"), ("mallory", ALICE_PASSWORD)] {
        let res = flow
            .post(
                "/oauth/signin",
                &csrf_cookie,
                &[
                    ("request", &request),
                    ("csrf", &csrf),
                    ("username", user),
                    ("password", password),
                ],
                None,
            )
            .await;
        assert!(set_cookie(&res, "oauth_session").is_none());
        let status = res.status();
        let body = res.text().await.unwrap();
        answers.push((status, body.contains("Wrong username or password.")));
    }
    assert_eq!(
        answers,
        vec![
            (StatusCode::UNAUTHORIZED, true),
            (StatusCode::UNAUTHORIZED, true)
        ]
    );
}

#[tokio::test]
async fn forged_form_posts_are_refused() {
    let flow = Flow::new().await;
    let page = flow.authorize(None).await;
    let csrf_cookie = cookie_pair(&set_cookie(&page, "oauth_csrf").unwrap());
    let html = page.text().await.unwrap();
    let request = field(&html, "request");
    let good_csrf = field(&html, "csrf");
    let login = |csrf: &str| {
        [
            ("request", request.clone()),
            ("csrf", csrf.to_owned()),
            ("username", "alice".into()),
            ("password", ALICE_PASSWORD.into()),
        ]
    };
    let res = flow
        .post(
            "/oauth/signin",
            &csrf_cookie,
            &login("forged").each_ref().map(|(k, v)| (*k, v.as_str())),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "wrong CSRF token");
    let res = flow
        .post(
            "/oauth/signin",
            "",
            &login(&good_csrf).each_ref().map(|(k, v)| (*k, v.as_str())),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF cookie");
    let res = flow
        .post(
            "/oauth/signin",
            &csrf_cookie,
            &login(&good_csrf).each_ref().map(|(k, v)| (*k, v.as_str())),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "cross-site Origin");

    let session = flow.sign_in().await;
    let consent = flow.authorize(Some(&session)).await.text().await.unwrap();
    let decision = [
        ("request", field(&consent, "request")),
        ("csrf", "forged".to_owned()),
        ("decision", "approve".into()),
    ];
    let form: Vec<(&str, &str)> = decision.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = flow.post("/oauth/consent", &session, &form, None).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "CSRF on the consent form"
    );
    let form = [
        ("request", field(&consent, "request")),
        ("csrf", field(&consent, "csrf")),
        ("decision", "approve".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = flow
        .post(
            "/oauth/consent",
            &session,
            &form,
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "cross-site consent");
    let res = flow.post("/oauth/consent", "", &form, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no session");
}

#[tokio::test]
async fn sign_in_then_approve_issues_a_code_for_the_user_and_is_remembered() {
    let flow = Flow::with_redirect("https://notes.example/callback").await;
    let session = flow.sign_in().await;
    let res = flow.authorize(Some(&session)).await;
    let status = res.status();
    assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
    let consent = res.text().await.unwrap();
    assert!(consent.contains("Note Taker") && consent.contains("notes.example"));
    assert!(
        !consent.contains("loopback-warning"),
        "no warning for a client on the web"
    );
    assert!(consent.contains("See your profile and your data items"));
    assert!(consent.contains("Create, change and delete your data items"));
    assert!(consent.contains("http://127.0.0.1:5001"), "the resource");
    let form = [
        ("request", field(&consent, "request")),
        ("csrf", field(&consent, "csrf")),
        ("decision", "approve".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = flow
        .post("/oauth/consent", &session, &form, Some(&flow.app.base))
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(params["state"], "s-42");
    assert_eq!(params["iss"], flow.app.base);
    let (status, tokens) = json_of(
        flow.app
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", flow.redirect),
                ("code_verifier", VERIFIER),
                ("client_id", &flow.client.id),
            ])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(access).unwrap();
    assert_eq!(claims["sub"], "alice", "the token is the signed-in user's");

    // The same client and scopes: not asked again.
    let res = flow.authorize(Some(&session)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(location_params(&res).contains_key("code"));
}

#[tokio::test]
async fn a_loopback_only_client_is_warned_about_and_asked_every_time() {
    let flow = Flow::new().await;
    let session = flow.sign_in().await;
    for round in 0..2 {
        let res = flow.authorize(Some(&session)).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "round {round}: the consent page"
        );
        let consent = res.text().await.unwrap();
        assert!(
            consent.contains("loopback-warning")
                && consent
                    .contains("Any program running on your machine could claim to be this client"),
            "round {round}"
        );
        let form = [
            ("request", field(&consent, "request")),
            ("csrf", field(&consent, "csrf")),
            ("decision", "approve".into()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = flow
            .post("/oauth/consent", &session, &form, Some(&flow.app.base))
            .await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert!(location_params(&res).contains_key("code"));
    }
}

#[tokio::test]
async fn deny_sends_access_denied_back() {
    let flow = Flow::new().await;
    let session = flow.sign_in().await;
    let consent = flow.authorize(Some(&session)).await.text().await.unwrap();
    let form = [
        ("request", field(&consent, "request")),
        ("csrf", field(&consent, "csrf")),
        ("decision", "deny".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = flow.post("/oauth/consent", &session, &form, None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s-42");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn parallel_wrong_passwords_are_checked_no_faster_than_serial_guessing() {
    let flow = std::sync::Arc::new(Flow::new().await);
    let page = flow.authorize(None).await;
    let csrf_cookie = cookie_pair(&set_cookie(&page, "oauth_csrf").unwrap());
    let html = page.text().await.unwrap();
    let form = std::sync::Arc::new((field(&html, "request"), field(&html, "csrf"), csrf_cookie));
    let guess = |flow: std::sync::Arc<Flow>, form: std::sync::Arc<(String, String, String)>| async move {
        let res = flow
            .post(
                "/oauth/signin",
                &form.2,
                &[
                    ("request", &form.0),
                    ("csrf", &form.1),
                    ("username", "alice"),
                    ("password", "not the password"),
                ],
                None,
            )
            .await;
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (res.status(), retry_after)
    };
    // 16 at once: only the free tries are checked at once; the others are refused unchecked (or,
    // if the free ones are done before they arrive, one waits out its delay first).
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let (flow, form) = (flow.clone(), form.clone());
            tokio::spawn(async move {
                let answer = guess(flow, form).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    let (mut checked, mut at_once) = (0, 0);
    for t in burst {
        let ((status, retry_after), after) = t.await.unwrap();
        match status {
            StatusCode::UNAUTHORIZED => {
                checked += 1;
                if after < std::time::Duration::from_millis(900) {
                    at_once += 1;
                }
            }
            StatusCode::TOO_MANY_REQUESTS => assert!(retry_after.is_some_and(|s| s >= 1)),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        at_once <= 3,
        "{at_once} checked at once: only the free tries may be"
    );
    assert!(
        checked <= 4,
        "{checked} of 16 checked: the free tries and at most one after its delay"
    );
    // Then 16 guessers for ten seconds: no more checks than one serial guesser gets (the
    // delays after the free tries are 1, 2 and 4 s: three more within ten seconds).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (flow, form) = (flow.clone(), form.clone());
            tokio::spawn(async move {
                let mut checked = 0;
                while std::time::Instant::now() < until {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    // A check still waiting out its delay when the ten seconds end is not counted.
                    let Ok((status, _)) =
                        tokio::time::timeout(left, guess(flow.clone(), form.clone())).await
                    else {
                        break;
                    };
                    if status == StatusCode::UNAUTHORIZED {
                        checked += 1;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                checked
            })
        })
        .collect();
    let mut later = 0;
    for w in workers {
        later += w.await.unwrap();
    }
    // Serial guessing gets the 3 free tries, then one after 1 s, 2 s and 4 s more: 6 within the
    // burst and the ten seconds after it.
    assert!(
        checked + later <= 6,
        "{} passwords checked in eleven seconds",
        checked + later
    );
    assert!(later >= 1, "guessing is slowed, not stopped");
}
