//! Sign-in through the company's identity provider by OpenID Connect: the authorization code
//! flow with PKCE, `state` and `nonce`. The provider's settings and keys come from its
//! discovery document; every call to it goes through the outbound address policy. The ID
//! token is checked (issuer, audience, signature by the provider's published keys, expiry,
//! nonce); a person is linked by the provider's subject, never by name, created at their
//! first sign-in with the role their groups give, and their role follows the groups at each
//! sign-in. Refusals say why, and are audited.

use crate::error::{Error, Result};
use crate::users::Role;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use rules::OidcSettings;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use store::{MasterKey, Sealed, Secret, Store, StoreError, UserRecord};

/// The setting that holds the client secret, sealed and bound to the issuer and client id.
pub const SECRET_SETTING: &str = "oidc-client-secret";
pub const SECRET_CONTEXT: &str = "oidc client secret";
/// What the browser's flow cookie is sealed for.
const FLOW_CONTEXT: &str = "oidc sign-in flow";
/// How long a person may take at the provider before coming back.
pub const FLOW_MS: i64 = 10 * 60 * 1000;
/// The provider's settings and keys are read again after this long (a key it withdrew is
/// trusted no longer than this).
const METADATA_TTL: Duration = Duration::from_secs(15 * 60);
/// A signing key tenure has not seen sends it to read the keys again, at most this often.
const REDISCOVER_GAP: Duration = Duration::from_secs(10);
/// The signature algorithms an ID token may use: the provider's key pairs, never a shared secret.
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];
/// The actor of what a sign-in through the provider does to a user (creates one, moves a role).
pub const ACTOR: &str = "identity provider";

/// Every claim of the ID token beside the standard ones (the groups claim is named by the
/// configuration, so it is read from here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extra {
    #[serde(flatten)]
    pub claims: HashMap<String, Value>,
}
impl AdditionalClaims for Extra {}

type Tokens = StandardTokenResponse<
    IdTokenFields<
        Extra,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
type OidcClient = openidconnect::Client<
    Extra,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the provider was refused: said to the person on the refusal page.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("this sign-in is unknown, was used already or took longer than 10 minutes: start again")]
    Stale,
    #[error("this sign-in was not started in this browser: start again from the sign-in page")]
    OtherBrowser,
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the identity provider's answer did not check out ({0}): nobody was signed in")]
    Token(String),
    #[error("{0}")]
    NoRole(String),
    #[error("{0} may not sign in here: only addresses at {1}")]
    Domain(String, String),
    #[error("the identity provider gave no e-mail address or user name for this person")]
    NoName,
    #[error("the tenure user {0} is disabled: an admin enables it")]
    Disabled(String),
    #[error("{0}")]
    Name(String),
}

impl Refusal {
    /// A short word for the audit and the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Stale => "stale",
            Refusal::OtherBrowser => "other-browser",
            Refusal::Provider(_) => "provider",
            Refusal::Token(_) => "id-token",
            Refusal::NoRole(_) => "no-role",
            Refusal::Domain(..) => "domain",
            Refusal::NoName => "no-name",
            Refusal::Disabled(_) => "disabled",
            Refusal::Name(_) => "name",
        }
    }
}

fn hash(s: &str) -> String {
    crate::intake::checksum(s.as_bytes())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Where a client secret may be sent: this issuer, for this client.
fn destination(s: &OidcSettings) -> String {
    format!("{} client {}", s.issuer.trim(), s.client_id.trim())
}

/// Seals the client secret, bound to the issuer and client id in force: a configuration that
/// later names another issuer does not get it.
pub async fn save_client_secret(
    store: &Store,
    key: &MasterKey,
    s: &OidcSettings,
    secret: &Secret,
    by: &str,
) -> Result<()> {
    if secret.expose().trim().is_empty() {
        return Err(Error::input("the client secret is empty"));
    }
    crate::secrets::save_named_secret(store, key, SECRET_SETTING, SECRET_CONTEXT, &destination(s), secret).await?;
    crate::decisions::record_one(
        store,
        "oidc_secret_set",
        "",
        by,
        serde_json::json!({"issuer": s.issuer, "client_id": s.client_id}),
    )
    .await
}

/// The client secret, when one is stored for this issuer and client (None: a public client,
/// PKCE alone). A secret stored for another issuer is refused, never sent.
pub async fn client_secret(store: &Store, key: &MasterKey, s: &OidcSettings) -> Result<Option<Secret>> {
    crate::secrets::load_named_secret(store, key, SECRET_SETTING, SECRET_CONTEXT, &destination(s)).await
}

/// The HTTP client for the provider: the outbound policy, no redirects, the CA if named.
fn http(s: &OidcSettings) -> Result<reqwest::Client> {
    let policy = scim_client::UrlPolicy { allow_insecure_http: false, allow_private: s.allow_private };
    let mut b = scim_client::outbound::client_builder(policy)
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(10));
    if let Some(ca) = &s.ca_file {
        let pem = std::fs::read(ca).map_err(|e| Error::refused(format!("auth.oidc.ca_file {ca}: {e}")))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| Error::refused(format!("auth.oidc.ca_file {ca}: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| Error::refused(format!("cannot build the HTTP client: {e}")))
}

type HttpError = openidconnect::HttpClientError<reqwest::Error>;

/// Sends one request to the provider if its URL passes the outbound policy (https, no internal
/// address unless allowed): the discovery document names the other endpoints, and a literal
/// address in them never reaches the resolver's own check.
async fn guarded(
    client: reqwest::Client,
    policy: scim_client::UrlPolicy,
    req: openidconnect::HttpRequest,
) -> std::result::Result<openidconnect::HttpResponse, HttpError> {
    let url = reqwest::Url::parse(&req.uri().to_string()).map_err(|e| HttpError::Other(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(HttpError::Other(format!("{} is not https", shown(&url))));
    }
    scim_client::outbound::check_url(&url, policy)
        .map_err(|why| HttpError::Other(format!("{}: {why}", shown(&url))))?;
    openidconnect::AsyncHttpClient::call(&client, req).await
}

/// The HTTP client for the provider as openidconnect calls it: every request through `guarded`.
fn caller(s: &OidcSettings) -> Result<impl Fn(openidconnect::HttpRequest) -> Sending> {
    let client = http(s)?;
    let policy = scim_client::UrlPolicy { allow_insecure_http: false, allow_private: s.allow_private };
    Ok(move |req| -> Sending { Box::pin(guarded(client.clone(), policy, req)) })
}

/// One request to the provider under way (owning all it needs, so the flow's futures stay Send).
type Sending = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<openidconnect::HttpResponse, HttpError>> + Send>,
>;

/// A URL as errors show it: never its query.
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The provider's discovery document and keys as last read, by the settings that read them.
struct Known {
    settings: OidcSettings,
    metadata: CoreProviderMetadata,
    read: Instant,
}

static KNOWN: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
/// The last discovery that failed, by the settings it was for: when, and why.
static FAILED: std::sync::Mutex<Option<(OidcSettings, Instant, String)>> = std::sync::Mutex::new(None);
/// When the keys were last read again for a key id not seen yet.
static FORCED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// The provider's settings and signing keys: read once, again after 15 minutes, or (`again`)
/// when a token is signed by a key not seen yet, at most every few seconds.
async fn metadata(s: &OidcSettings, again: bool) -> Result<CoreProviderMetadata> {
    {
        let known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = known.as_ref().filter(|k| k.settings == *s) {
            // A forced read at most every few seconds: a stream of tokens with made-up key ids
            // cannot make tenure hammer the provider.
            let mut forced = FORCED.lock().unwrap_or_else(|p| p.into_inner());
            let force = again && forced.is_none_or(|at| at.elapsed() >= REDISCOVER_GAP);
            if force {
                *forced = Some(Instant::now());
            }
            if k.read.elapsed() < METADATA_TTL && !force {
                return Ok(k.metadata.clone());
            }
        }
    }
    // A provider that just failed is not asked again at every visit of the sign-in page.
    if let Some((settings, at, why)) = FAILED.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if settings == s && at.elapsed() < REDISCOVER_GAP {
            return Err(Error::unavailable(why.clone()));
        }
    }
    let r = discover(s).await;
    if let Err(e) = &r {
        *FAILED.lock().unwrap_or_else(|p| p.into_inner()) = Some((s.clone(), Instant::now(), e.to_string()));
    }
    r
}

async fn discover(s: &OidcSettings) -> Result<CoreProviderMetadata> {
    let issuer = IssuerUrl::new(s.issuer.trim().to_string())
        .map_err(|e| Error::refused(format!("auth.oidc.issuer {:?}: {e}", s.issuer)))?;
    let call = caller(s)?;
    let m = CoreProviderMetadata::discover_async(issuer, &call).await.map_err(|e| {
        Error::unavailable(format!("the identity provider at {} could not be read: {}", s.issuer, chain(&e)))
    })?;
    // Every endpoint it names is called under the same policy as the issuer.
    let policy = scim_client::UrlPolicy { allow_insecure_http: false, allow_private: s.allow_private };
    let mut urls = vec![("authorization_endpoint", m.authorization_endpoint().url().clone())];
    if let Some(t) = m.token_endpoint() {
        urls.push(("token_endpoint", t.url().clone()));
    } else {
        return Err(Error::refused(format!("the identity provider at {} publishes no token endpoint", s.issuer)));
    }
    urls.push(("jwks_uri", m.jwks_uri().url().clone()));
    for (what, u) in urls {
        if u.scheme() != "https" {
            return Err(Error::refused(format!("the identity provider's {what} {u} is not https")));
        }
        scim_client::outbound::check_url(&u, policy)
            .map_err(|why| Error::refused(format!("the identity provider's {what} {u}: {why}")))?;
    }
    *KNOWN.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Known { settings: s.clone(), metadata: m.clone(), read: Instant::now() });
    Ok(m)
}

/// An error with its causes, one after another (reqwest's say little at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s
}

async fn client(
    store: &Store,
    key: &MasterKey,
    s: &OidcSettings,
    m: CoreProviderMetadata,
    redirect: &str,
) -> Result<OidcClient> {
    let secret = client_secret(store, key, s).await?.map(|x| ClientSecret::new(x.expose().to_string()));
    let redirect = RedirectUrl::new(redirect.to_string())
        .map_err(|e| Error::refused(format!("the callback URL {redirect}: {e}")))?;
    Ok(OidcClient::from_provider_metadata(m, ClientId::new(s.client_id.trim().to_string()), secret)
        .set_redirect_uri(redirect))
}

/// What the browser carries between leaving for the provider and coming back, sealed under
/// the master key: it can be neither read nor made elsewhere.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    redirect: String,
}

/// A sign-in sent to the provider: where to send the browser, and the cookie's value.
pub struct Begun {
    pub authorize_url: String,
    pub cookie: String,
}

/// Starts a sign-in: the provider's authorization URL (PKCE S256, a fresh state and nonce),
/// the state recorded to be taken once, the rest sealed into the browser's cookie.
/// `redirect`: tenure's callback URL; `next`: where the person goes once signed in.
pub async fn begin(store: &Store, key: &MasterKey, s: &OidcSettings, redirect: &str, next: &str) -> Result<Begun> {
    let m = metadata(s, false).await?;
    let client = client(store, key, s, m, redirect).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req =
        client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for scope in s.scopes.iter().map(|x| x.trim()).filter(|x| !x.is_empty() && *x != "openid") {
        req = req.add_scope(Scope::new(scope.to_string()));
    }
    let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
    let t = now_ms();
    store.add_sign_in_flow(&hash(state.secret()), t, t - FLOW_MS).await?;
    let flow = Flow {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next: next.to_string(),
        redirect: redirect.to_string(),
    };
    let json = serde_json::to_string(&flow).map_err(|e| Error::unavailable(e.to_string()))?;
    let sealed = key.seal(&Secret::new(json), FLOW_CONTEXT);
    Ok(Begun { authorize_url: url.to_string(), cookie: format!("{}.{}", sealed.key_id, sealed.blob) })
}

/// What the provider sent back to the callback.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207: the issuer that answers, when the provider says it.
    pub iss: Option<String>,
}

/// A person signed in through the provider.
#[derive(Debug)]
pub struct SignedIn {
    pub user: UserRecord,
    /// Where they were going.
    pub next: String,
    /// Made at this sign-in.
    pub created: bool,
    /// Their role before this sign-in, when the groups moved it.
    pub role_was: Option<String>,
}

/// Who the ID token says signed in.
struct Person {
    subject: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    groups: Vec<String>,
}

/// Finishes a sign-in: the flow taken once, the code exchanged (with the PKCE verifier and the
/// client's secret), the ID token checked, the person found or made, their role from their
/// groups. `Ok(Err(refusal))`: refused, audited, nobody signed in.
pub async fn finish(
    store: &Store,
    key: &MasterKey,
    s: &OidcSettings,
    cookie: Option<&str>,
    back: &Callback,
    address: &str,
) -> Result<std::result::Result<SignedIn, Refusal>> {
    let r = finish_inner(store, key, s, cookie, back).await?;
    if let Err(refusal) = &r {
        crate::metrics::inc("tenure_login_failures_total", &[]);
        let detail = serde_json::json!({"through": s.name, "refused": refusal.kind(), "why": refusal.to_string(),
            "address": address});
        crate::decisions::record_one(store, "login_failed", "", "anonymous", detail).await?;
    }
    Ok(r)
}

async fn finish_inner(
    store: &Store,
    key: &MasterKey,
    s: &OidcSettings,
    cookie: Option<&str>,
    back: &Callback,
) -> Result<std::result::Result<SignedIn, Refusal>> {
    let Some(state) = back.state.as_deref().filter(|x| !x.is_empty()) else { return Ok(Err(Refusal::Stale)) };
    // The state is taken first and once, whatever follows: a replayed answer finds nothing.
    let Some(sent) = store.take_sign_in_flow(&hash(state)).await? else { return Ok(Err(Refusal::Stale)) };
    if now_ms() - sent > FLOW_MS {
        return Ok(Err(Refusal::Stale));
    }
    // The browser that comes back is the one that left: its sealed cookie holds this state.
    let flow = cookie.and_then(|c| c.split_once('.')).and_then(|(key_id, blob)| {
        let sealed = Sealed { key_id: key_id.to_string(), blob: blob.to_string() };
        let json = key.open(&sealed, FLOW_CONTEXT).ok()?;
        serde_json::from_str::<Flow>(json.expose()).ok()
    });
    let Some(flow) = flow.filter(|f| bool::from(subtle::ConstantTimeEq::ct_eq(f.state.as_bytes(), state.as_bytes())))
    else {
        return Ok(Err(Refusal::OtherBrowser));
    };
    if let Some(e) = &back.error {
        let said = back.error_description.as_deref().map(|d| format!("{e}: {d}")).unwrap_or_else(|| e.clone());
        return Ok(Err(Refusal::Provider(said.chars().filter(|c| !c.is_control()).take(300).collect())));
    }
    if let Some(iss) = &back.iss {
        if iss.trim_end_matches('/') != s.issuer.trim().trim_end_matches('/') {
            return Ok(Err(Refusal::Token(format!("the answer came from the issuer {iss:?}, not {}", s.issuer))));
        }
    }
    let Some(code) = back.code.as_deref().filter(|x| !x.is_empty()) else {
        return Ok(Err(Refusal::Provider("no authorization code in the answer".into())));
    };
    let m = metadata(s, false).await?;
    let c = client(store, key, s, m, &flow.redirect).await?;
    let call = caller(s)?;
    let request = c
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| Error::refused(format!("the identity provider: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()));
    let tokens = match request.request_async(&call).await {
        Ok(t) => t,
        Err(openidconnect::RequestTokenError::ServerResponse(e)) => {
            let said =
                e.error_description().map(|d| format!("{}: {d}", e.error())).unwrap_or_else(|| e.error().to_string());
            return Ok(Err(Refusal::Provider(said)));
        }
        Err(e) => return Err(Error::unavailable(format!("the identity provider's token endpoint: {}", chain(&e)))),
    };
    let Some(id_token) = tokens.id_token() else {
        return Ok(Err(Refusal::Token("the token answer holds no ID token".into())));
    };
    let nonce = Nonce::new(flow.nonce.clone());
    let person = {
        // Signed by the provider's published keys only: never an HMAC keyed with the client
        // secret (which tenure holds too), whatever the discovery document offers.
        let check = |c: &OidcClient| {
            let verifier = c.id_token_verifier().set_allowed_algs(ASYMMETRIC.to_vec());
            id_token.claims(&verifier, &nonce).map(|claims| Person {
                subject: claims.subject().to_string(),
                name: claims.preferred_username().map(|u| u.to_string()),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified(),
                groups: groups_of(claims.additional_claims(), &s.groups_claim),
            })
        };
        match check(&c) {
            Ok(p) => p,
            // A key not seen yet: the provider may have rotated its keys; read them again once.
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                let m = metadata(s, true).await?;
                let again = client(store, key, s, m, &flow.redirect).await?;
                match check(&again) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(Refusal::Token(e.to_string()))),
                }
            }
            Err(e) => return Ok(Err(Refusal::Token(e.to_string()))),
        }
    };
    person_signed_in(store, s, person, flow.next).await
}

/// The groups claim: a list of strings, or one string.
fn groups_of(extra: &Extra, claim: &str) -> Vec<String> {
    match extra.claims.get(claim) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => vec![],
    }
}

/// The role a person's groups give (the highest), or why none does.
pub fn role_for(s: &OidcSettings, groups: &[String]) -> std::result::Result<Role, String> {
    for (role, wanted) in s.roles.by_rank() {
        if wanted.iter().any(|w| w.trim() == "*" || groups.iter().any(|g| g == w.trim())) {
            return Role::parse(role).map_err(|e| e.to_string());
        }
    }
    let had = if groups.is_empty() {
        format!("the identity provider gave no groups (claim {:?})", s.groups_claim)
    } else {
        format!("the identity provider gave the groups {}", groups.join(", "))
    };
    Err(format!("no tenure role is given to your groups: {had}; an admin maps a group to a role in [auth.oidc.roles]"))
}

/// How long the API tokens of a person who signs in through the provider keep working
/// without a sign-in of theirs: someone removed at the provider never signs in again, and
/// tenure has no other way to learn it.
pub const TOKEN_REACH_DAYS: i64 = 30;

fn seen_setting(user_id: &str) -> String {
    format!("oidc-seen:{user_id}")
}

fn disabled_setting(user_id: &str) -> String {
    format!("oidc-disabled:{user_id}")
}

/// Whether a token made by this person still acts for them: always for a local account; for
/// a person of the identity provider, while they signed in through it within `TOKEN_REACH_DAYS`.
pub async fn vouched(store: &Store, maker: &UserRecord) -> Result<bool> {
    if maker.idp_subject.is_none() {
        return Ok(true);
    }
    let seen = store.setting(&seen_setting(&maker.id)).await?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Ok(now_ms() - seen <= TOKEN_REACH_DAYS * 24 * 3600 * 1000)
}

/// A known person the provider no longer lets in here (no group gives a role, or their
/// address left the allowed domains): disabled, which ends their sessions and stops their API
/// tokens, and marked so that a later sign-in with a role enables them again. An Admin's own
/// disable is left as it is.
async fn shut_out(store: &Store, s: &OidcSettings, subject: &str, why: &str) -> Result<()> {
    let Some(u) = store.user_by_subject(subject).await? else { return Ok(()) };
    store.delete_sessions_of(&u.id).await?;
    if u.disabled {
        return Ok(());
    }
    store.set_setting(&disabled_setting(&u.id), why).await?;
    store.set_user_disabled(&u.name, true).await?;
    crate::decisions::record_one(
        store,
        "user_disable",
        "",
        ACTOR,
        serde_json::json!({"user": u.name, "through": s.name, "why": why}),
    )
    .await
}

async fn person_signed_in(
    store: &Store,
    s: &OidcSettings,
    p: Person,
    next: String,
) -> Result<std::result::Result<SignedIn, Refusal>> {
    let subject = format!("{} {}", s.issuer.trim(), p.subject);
    let email = p.email.as_deref().map(|e| e.trim().to_lowercase()).filter(|e| e.contains('@'));
    if !s.allowed_domains.is_empty() {
        let domains = s.allowed_domains.iter().map(|d| d.trim().to_lowercase()).collect::<Vec<_>>();
        let ok = email.as_deref().is_some_and(|e| {
            let at = e.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            domains.iter().any(|d| d == at)
        }) && p.email_verified != Some(false);
        if !ok {
            let who = email.clone().unwrap_or_else(|| "a person without an e-mail address".into());
            let who = if p.email_verified == Some(false) { format!("{who} (not verified)") } else { who };
            let refusal = Refusal::Domain(who, domains.join(", "));
            shut_out(store, s, &subject, &refusal.to_string()).await?;
            return Ok(Err(refusal));
        }
    }
    let role = match role_for(s, &p.groups) {
        Ok(r) => r,
        Err(why) => {
            shut_out(store, s, &subject, &why).await?;
            return Ok(Err(Refusal::NoRole(why)));
        }
    };
    if let Some(mut u) = store.user_by_subject(&subject).await? {
        if u.disabled {
            // Disabled by the provider's groups, which give a role again: enabled again. An
            // Admin's disable stands.
            if store.setting(&disabled_setting(&u.id)).await?.is_none() {
                return Ok(Err(Refusal::Disabled(u.name)));
            }
            store.set_user_disabled(&u.name, false).await?;
            store.delete_setting(&disabled_setting(&u.id)).await?;
            crate::decisions::record_one(
                store,
                "user_enable",
                "",
                ACTOR,
                serde_json::json!({"user": u.name, "through": s.name}),
            )
            .await?;
            u.disabled = false;
        }
        store.set_setting(&seen_setting(&u.id), &now_ms().to_string()).await?;
        let mut role_was = None;
        if u.role != role.as_str() {
            role_was = Some(u.role.clone());
            crate::users::set_role(store, &u.name, role, ACTOR).await?;
        }
        let user = store.user_by_id(&u.id).await?.unwrap_or(u);
        return Ok(Ok(SignedIn { user, next, created: false, role_was }));
    }
    let Some(name) = email.or(p.name.map(|n| n.trim().to_string())).filter(|n| !n.is_empty()) else {
        return Ok(Err(Refusal::NoName));
    };
    let existing = store.users().await?;
    if existing.iter().any(|u| u.name.eq_ignore_ascii_case(&name)) {
        return Ok(Err(Refusal::Name(format!(
            "a local tenure user is named {name} already, and a local account is never handed to the identity \
             provider by its name: an admin renames or removes that local user"
        ))));
    }
    if crate::names::check_new(crate::names::Kind::User, &name, existing.iter().map(|u| u.name.as_str())).is_err() {
        // Which existing name it resembles is not said: the page is shown before anyone is signed in.
        return Ok(Err(Refusal::Name(format!(
            "the name {name:?} cannot be a tenure user name, or is too like an existing one: an admin looks at the \
             users in Settings"
        ))));
    }
    let user = match store.add_provider_user(&name, role.as_str(), &subject).await {
        Ok(u) => u,
        Err(StoreError::Duplicate(m)) => return Ok(Err(Refusal::Name(m))),
        Err(e) => return Err(e.into()),
    };
    store.set_setting(&seen_setting(&user.id), &now_ms().to_string()).await?;
    crate::decisions::record_one(
        store,
        "user_add",
        "",
        ACTOR,
        serde_json::json!({"user": user.name, "role": role.as_str(), "through": s.name, "subject": subject}),
    )
    .await?;
    Ok(Ok(SignedIn { user, next, created: true, role_was: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        let mut s: OidcSettings = toml_like();
        s.roles.reviewer = vec!["tenure-reviewers".into()];
        s.roles.admin = vec!["tenure-admins".into()];
        s
    }

    fn toml_like() -> OidcSettings {
        OidcSettings {
            name: "Okta".into(),
            issuer: "https://idp.example.com".into(),
            client_id: "tenure".into(),
            scopes: vec!["email".into()],
            groups_claim: "groups".into(),
            roles: Default::default(),
            allowed_domains: vec![],
            redirect_url: None,
            ca_file: None,
            allow_private: false,
        }
    }

    #[test]
    fn the_highest_role_any_group_gives_wins_and_none_says_why() {
        let s = settings();
        let g = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(role_for(&s, &g(&["tenure-reviewers"])), Ok(Role::Reviewer));
        assert_eq!(role_for(&s, &g(&["tenure-reviewers", "tenure-admins"])), Ok(Role::Admin));
        let why = role_for(&s, &g(&["sales"])).unwrap_err();
        assert!(why.contains("the groups sales") && why.contains("[auth.oidc.roles]"), "{why}");
        assert!(role_for(&s, &[]).unwrap_err().contains("gave no groups"));
        let mut everyone = settings();
        everyone.roles.viewer = vec!["*".into()];
        assert_eq!(role_for(&everyone, &[]), Ok(Role::Viewer));
    }

    #[test]
    fn groups_are_a_list_or_one_string() {
        let e: Extra = serde_json::from_value(serde_json::json!({"groups": ["a", "b", 3], "roles": "x"})).unwrap();
        assert_eq!(groups_of(&e, "groups"), vec!["a", "b"]);
        assert_eq!(groups_of(&e, "roles"), vec!["x"]);
        assert!(groups_of(&e, "missing").is_empty());
    }
}
