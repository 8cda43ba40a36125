//! Bearer JWTs from an SSO proxy: HS256 with a shared secret, RS256 with keys from a JWKS
//! file; the token's claims name the team and the role.

use freeway_config::JwtConfig;
use freeway_store::Role;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

pub struct JwtVerifier {
    hs256: Option<(DecodingKey, Validation)>,
    /// RS256 keys by `kid` (`None` for a key without one).
    rs256: Vec<(Option<String>, DecodingKey)>,
    rs_validation: Validation,
    team_claim: String,
    role_claim: String,
    default_role: Role,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    pub team: String,
    pub role: Role,
    /// Unix seconds.
    pub expires: i64,
}

impl JwtVerifier {
    /// `jwks` is the text of `jwks_file`, read by the caller.
    pub fn new(config: &JwtConfig, jwks: Option<&str>) -> Result<Self, String> {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = 30;
            match &config.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            if let Some(iss) = &config.issuer {
                v.set_issuer(&[iss]);
            }
            v
        };
        let hs256 = config.secret.as_ref().map(|s| {
            (
                DecodingKey::from_secret(s.expose().as_bytes()),
                validation(Algorithm::HS256),
            )
        });
        let mut rs256 = Vec::new();
        if let Some(text) = jwks {
            let set: JwkSet = serde_json::from_str(text)
                .map_err(|e| format!("auth.jwt.jwks_file is not a JWKS document: {e}"))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("auth.jwt.jwks_file: a key cannot be used: {e}"))?;
                rs256.push((jwk.common.key_id.clone(), key));
            }
            if rs256.is_empty() {
                return Err("auth.jwt.jwks_file holds no keys".to_owned());
            }
        }
        Ok(Self {
            hs256,
            rs256,
            rs_validation: validation(Algorithm::RS256),
            team_claim: config.team_claim.clone(),
            role_claim: config.role_claim.clone(),
            default_role: Role::parse(&config.default_role).unwrap_or(Role::Developer),
        })
    }

    /// A compact JWS: three base64url parts, the first a JSON object.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
    }

    /// Checks signature, expiry, issuer and audience; reads the team and role claims.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("unreadable token: {e}"))?;
        let data = match header.alg {
            Algorithm::HS256 => {
                let (key, validation) = self
                    .hs256
                    .as_ref()
                    .ok_or("HS256 tokens are not accepted here (no auth.jwt.secret)")?;
                jsonwebtoken::decode::<Value>(token, key, validation)
            }
            Algorithm::RS256 => {
                let key = self
                    .rs256
                    .iter()
                    .find(|(kid, _)| header.kid.is_none() || *kid == header.kid)
                    .map(|(_, k)| k)
                    .ok_or("no key of auth.jwt.jwks_file matches the token's kid")?;
                jsonwebtoken::decode::<Value>(token, key, &self.rs_validation)
            }
            other => return Err(format!("tokens signed with {other:?} are not accepted")),
        }
        .map_err(|e| format!("the token is not valid: {e}"))?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let team = text(&self.team_claim)
            .ok_or_else(|| format!("the token has no `{}` claim naming a team", self.team_claim))?;
        let role = match text(&self.role_claim) {
            Some(r) => Role::parse(&r).ok_or_else(|| {
                format!("the token's role `{r}` is not admin, developer or viewer")
            })?,
            None => self.default_role,
        };
        Ok(Claims {
            subject: text("sub").unwrap_or_else(|| "unknown".to_owned()),
            team,
            role,
            expires: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}
