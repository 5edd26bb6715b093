//! Resource indicators (RFC 8707 section 2): parsing, and whether one lies under a resource this
//! server issues tokens for.

use url::Url;

/// Whether `requested` (an RFC 8707 resource) names `base` or a URL under it; loopback names
/// count as one host.
pub fn resource_is_under(requested: &Url, base: &Url) -> bool {
    shared_config::urls::is_under(requested, base)
}

/// Parses an RFC 8707 resource indicator: an absolute URI without a fragment.
pub fn parse_resource(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| format!("resource {raw:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("resource {raw:?} must not contain a fragment"));
    }
    Ok(url)
}
