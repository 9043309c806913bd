//! Keeping secrets out of logs, metrics and messages: camera URLs and broker
//! URLs carry passwords. Shared by every stage that names a URL.

/// Redacts a password in URI text that could not be parsed.
pub fn redact_text(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &text[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &text[..scheme_end + 3], &userinfo[..colon], &text[at..]),
                None => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_become_stars() {
        assert_eq!(redact_text("rtsp://admin:secret@10.0.0.5/x"), "rtsp://admin:***@10.0.0.5/x");
        assert_eq!(redact_text("nats://user:p@ss@host:4222"), "nats://user:***@host:4222");
        assert_eq!(redact_text("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(redact_text("mqtt://token@host"), "mqtt://token@host");
    }
}
