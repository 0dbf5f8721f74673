//! URLs as they may be shown: in an error, a log line, a metric label or
//! `/health`. Userinfo (`user:password@`), the query and the fragment are
//! where URLs carry secrets (a presigned signature, a SAS token, a
//! `?token=`), so they are dropped; scheme, host, port and path stay, which
//! is what a reader needs to find the resource.

/// `text` (a URL, or what was meant to be one) without userinfo, query or
/// fragment. Works on the text itself, so a value that does not parse as a
/// URL is shown as safely as one that does.
pub fn url(text: &str) -> String {
    let text = text.trim();
    let text = &text[..text.find(['?', '#']).unwrap_or(text.len())];
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    let authority = &rest[..rest.find(['/', '\\']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}{}", &text[..start], &rest[at + 1..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn userinfo_query_and_fragment_are_dropped() {
        assert_eq!(
            url("http://user:SECRET@idp.example.com/realms/x"),
            "http://idp.example.com/realms/x"
        );
        assert_eq!(
            url("https://mcp.example.com/mcp?token=SECRET#frag"),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(url("https://a@b:c@host:8443/p"), "https://host:8443/p");
        assert_eq!(url(" user:SECRET@host/x "), "host/x");
        assert_eq!(url("http://host\\@evil/?x"), "http://host\\@evil/");
        assert_eq!(url("not a url"), "not a url");
        assert_eq!(url("https://host/a@b"), "https://host/a@b");
    }
}
