//! Reading one parameter out of a query string.

/// The raw value of the first `name=value` pair in `query`, if any. Values here are
/// numbers, so no percent-decoding is done (an encoded number simply fails to parse).
pub(crate) fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::param;

    #[test]
    fn finds_the_first_match() {
        assert_eq!(param(Some("ms=5"), "ms"), Some("5"));
        assert_eq!(param(Some("a=1&ms=7&ms=9"), "ms"), Some("7"));
        assert_eq!(param(Some("ms"), "ms"), Some(""));
        assert_eq!(param(Some("xms=1"), "ms"), None);
        assert_eq!(param(Some(""), "ms"), None);
        assert_eq!(param(None, "ms"), None);
    }
}
