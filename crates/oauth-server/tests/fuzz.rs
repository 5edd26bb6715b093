//! Property tests ("fuzzing" within `cargo test`): the token request parser, the registration
//! parser and the token verifier, fed arbitrary and mutated input, never panic, and the HTTP
//! endpoints never answer 5xx. PROPTEST_CASES sets how many inputs each property tries.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, header};
use oauth_server::domain::AccessClaims;
use oauth_server::domain::Params;
use oauth_server::keys::{KeySet, SigningKey};
use oauth_server::service::register::{NewClient, Policy, RegistrationRequest};
use oauth_server::service::token::Grant;
use oauth_server::state::{AppState, ManualClock};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn keys() -> &'static (SigningKey, String) {
    static KEY: OnceLock<(SigningKey, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::generate_es256().unwrap();
        let claims = json!({"iss": "http://127.0.0.1:5000", "sub": "u", "aud": "http://127.0.0.1:5001",
            "client_id": "c", "scope": "read", "iat": 1, "exp": 4_000_000_000u64, "jti": "j"});
        let token = key.sign(&claims).unwrap();
        (key, token)
    })
}

fn state() -> AppState {
    let pem = keys().0.to_pkcs8_pem().unwrap();
    let keys = KeySet::new(
        SigningKey::from_pem(&pem).unwrap(),
        vec![],
        "http://127.0.0.1:5000",
    );
    AppState::with_parts(
        shared_config::Config::demo_defaults(),
        keys,
        Arc::new(ManualClock::new(1_800_000_000)),
    )
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("https://a.example/cb"),
            Just("http://127.0.0.1:8080/callback"),
            Just("client_credentials"),
            Just("authorization_code"),
            Just("none"),
            Just("read write"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("client_name".to_owned()),
                    Just("redirect_uris".to_owned()),
                    Just("grant_types".to_owned()),
                    Just("response_types".to_owned()),
                    Just("token_endpoint_auth_method".to_owned()),
                    Just("scope".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..7
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A form body made of the token endpoint's own parameter names and arbitrary values.
fn token_form() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("grant_type"),
        Just("code"),
        Just("code_verifier"),
        Just("redirect_uri"),
        Just("refresh_token"),
        Just("scope"),
        Just("resource"),
        Just("client_id"),
        Just("client_secret"),
    ];
    let value = prop_oneof![
        Just("authorization_code".to_owned()),
        Just("client_credentials".to_owned()),
        Just("refresh_token".to_owned()),
        Just("demo_client".to_owned()),
        Just("demo_secret".to_owned()),
        ".{0,130}",
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    })
}

/// `default` cases, or PROPTEST_CASES (divided as the defaults are: the HTTP property is the
/// slow one); no failure files are written.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |c| (c * default / 2000).max(1));
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn the_token_request_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(params) = Params::parse(&bytes) {
            let _ = Grant::try_from(&params);
        }
    }

    #[test]
    fn the_token_request_parser_takes_any_form(form in token_form()) {
        if let Ok(params) = Params::parse(form.as_bytes()) {
            let _ = Grant::try_from(&params);
        }
    }

    #[test]
    fn the_registration_parser_takes_any_json(value in json_value()) {
        if let Ok(request) = serde_json::from_value::<RegistrationRequest>(value) {
            let policy = Policy::dynamic(&shared_config::Config::demo_defaults());
            let _ = NewClient::check(request, policy);
        }
    }

    #[test]
    fn the_verifier_refuses_every_mutation_of_a_valid_token(
        index in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let (_, token) = keys();
        let set = KeySet::new(SigningKey::from_pem(&keys().0.to_pkcs8_pem().unwrap()).unwrap(), vec![], "http://127.0.0.1:5000");
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        // A changed byte may still decode to the same JWS only if it was in base64 padding
        // bits; then the claims are the same ones, which is fine. Anything else fails.
        if let Ok(claims) = set.verify::<AccessClaims>(&mutated) {
            prop_assert_eq!(claims.sub, "u");
        }
    }

    #[test]
    fn the_verifier_takes_any_string(token in ".{0,300}") {
        let set = KeySet::new(SigningKey::from_pem(&keys().0.to_pkcs8_pem().unwrap()).unwrap(), vec![], "http://127.0.0.1:5000");
        prop_assert!(set.verify::<AccessClaims>(&token).is_err());
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn no_endpoint_answers_5xx_to_any_form_or_json(form in token_form(), json in json_value(), basic in proptest::option::of("[ -~]{0,40}")) {
        let app = oauth_server::app(state());
        runtime().block_on(async move {
            for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
                let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                if let Some(b) = &basic {
                    req = req.header(header::AUTHORIZATION, format!("Basic {b}"));
                }
                let res = app.clone().oneshot(req.body(Body::from(form.clone())).unwrap()).await.unwrap();
                assert!(res.status().as_u16() < 500, "{path} {form:?}: {}", res.status());
            }
            let res = app.clone().oneshot(
                Request::post("/oauth/register").header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(json.to_string())).unwrap()).await.unwrap();
            assert!(res.status().as_u16() < 500, "register {json}: {}", res.status());
            let query = form.clone();
            let res = app.clone().oneshot(
                Request::get(format!("/oauth/authorize?{query}")).body(Body::empty()).unwrap()).await.unwrap();
            assert!(res.status().as_u16() < 500, "authorize {query}: {}", res.status());
        });
    }
}
