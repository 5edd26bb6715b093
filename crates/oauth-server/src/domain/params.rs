//! OAuth request parameters (RFC 6749 sections 3.1 and 3.2: "parameters MUST NOT be included
//! more than once"; empty values count as absent), parsed once from a form body or a query.

use std::collections::HashMap;

use crate::error::OAuthError;

/// A set of OAuth parameters, each present at most once; empty values count as absent
/// (RFC 6749 section 3.1).
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text, refusing a repeated parameter.
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {key} is included more than once"
                )));
            }
            if map.len() > 64 {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter the request cannot do without.
    pub fn require(&self, key: &'static str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter: {key}")))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}
