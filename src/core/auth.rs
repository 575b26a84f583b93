//! Client-side digest state shared by every request a UA authenticates (REGISTER, INVITE, BYE…):
//! the last challenge, whether it came as 401 or 407, and the nonce count.

use rand::rngs::StdRng;

use super::message::{header, header_values, random_token};
use super::sip::digest::{self, Challenge, DigestError, DigestInput};
use super::sip::{HasHeaders, Header, Response};

/// Who is asking, and the secret to answer with.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub auth_user: &'a str,
    pub password: &'a ringside_config::Secret,
}

/// The challenge to answer on the next request, reused with an incremented nonce count.
#[derive(Debug, Clone)]
pub struct Credentials {
    challenge: Challenge,
    /// Answer with Proxy-Authorization (407) rather than Authorization (401).
    proxy: bool,
    nonce_count: u32,
}

impl Credentials {
    /// Reads the strongest usable challenge of a 401 or 407 response.
    pub fn from_challenge(response: &Response) -> Result<Self, DigestError> {
        let proxy = u16::from(response.status_code.clone()) == 407;
        let name = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let challenge = digest::select_challenge(header_values(response.headers(), name))?;
        Ok(Self {
            challenge,
            proxy,
            nonce_count: 0,
        })
    }

    /// `stale=true`: the credentials were right, only the nonce expired.
    pub fn is_stale(&self) -> bool {
        self.challenge.stale
    }

    /// The Authorization / Proxy-Authorization header for one request.
    pub fn authorize(
        &mut self,
        identity: Identity<'_>,
        method: &str,
        uri: &str,
        body: &[u8],
        rng: &mut StdRng,
    ) -> Result<Header, DigestError> {
        self.nonce_count += 1;
        let cnonce = random_token(rng, 16);
        let input = DigestInput {
            username: identity.auth_user,
            password: identity.password.expose(),
            method,
            uri,
            body,
            cnonce: &cnonce,
            nonce_count: self.nonce_count,
        };
        let value = digest::authorization_value(&self.challenge, &input)?;
        let name = if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        Ok(header(name, value))
    }
}
