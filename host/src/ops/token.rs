//! Bearer-token checks in constant time.
//!
//! Both sides are hashed first (SHA-256), so the comparison takes the same
//! time whatever the presented token's length or content, and `subtle`
//! compares the digests without an early exit.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The expected token, kept as its digest.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl BearerToken {
    pub fn new(token: &str) -> BearerToken {
        BearerToken { digest: Sha256::digest(token.as_bytes()).into() }
    }

    /// `Authorization` header value, e.g. `Bearer abc`.
    pub fn accepts_header(&self, header: Option<&str>) -> bool {
        match header.and_then(|value| value.strip_prefix("Bearer ")) {
            Some(presented) => self.matches(presented),
            None => false,
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = BearerToken::new("s3cret");
        assert!(token.accepts_header(Some("Bearer s3cret")));
        for wrong in
            [None, Some("s3cret"), Some("Bearer s3cre"), Some("Bearer s3cret "), Some("bearer s3cret"), Some("Bearer ")]
        {
            assert!(!token.accepts_header(wrong), "{wrong:?}");
        }
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
