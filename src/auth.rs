//! Who may call Quiver: the bearer token of `--flight.token-file`, the users of the web
//! configuration's `basic_auth_users` (bcrypt hashes, as Prometheus), and the session tokens
//! Flight's handshake gives those users. The HTTP auth layer (`api::auth`) and Flight's
//! (`flight::auth`) both ask [`Auth::check`], so the two ports accept the same credentials.
//!
//! - Secrets are compared in constant time, over SHA-256 digests of both sides so that not even
//!   the length of the token leaks through timing.
//! - bcrypt is slow on purpose (tens of milliseconds). A successful check is remembered by a
//!   keyed hash of user and password (never the password), so a dashboard's requests do not each
//!   pay for it; a failed one is not, so guessing always costs a bcrypt. bcrypt runs on the
//!   blocking pool, one at a time, so a flood of wrong passwords takes one core, not all.
//! - An unknown user costs a bcrypt too (against a hash of the same cost, made when the users
//!   are set), so timing does not tell which users exist.
//! - The users can change while running (the web configuration is re-read, `crate::web`): the
//!   remembered successes are forgotten then, and a removed user's session tokens stop working.
//! - Session tokens are stateless: `qv1.<user>.<expiry>.<HMAC>` under a key made at startup and
//!   bound to the user's password hash (a changed password ends them), so
//!   they die with the process and nothing grows with the number of clients.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::{digest, hmac, rand};
use subtle::ConstantTimeEq;

/// Who a request is, once its credentials were accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials are configured: everyone may call.
    Anonymous,
    /// The `--flight.token-file` token.
    Token,
    /// A `basic_auth_users` user (by password, or by a session token of theirs).
    User(String),
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no credentials were given")]
    Missing,
    #[error("the credentials are not valid")]
    Invalid,
}

/// How long a session token of Flight's handshake is valid.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Most (user, password) pairs remembered as verified. Only successes are kept, so the pairs are
/// as many as the users (and their password changes); the bound is a safety net.
const VERIFIED_CAPACITY: usize = 256;

/// The credentials Quiver accepts.
pub struct Auth {
    /// `--flight.token-file`'s token and its SHA-256.
    token: Option<(String, [u8; 32])>,
    /// The users in force.
    users: parking_lot::RwLock<Arc<Users>>,
    /// Keys the verified-pairs cache and signs session tokens; made at startup.
    key: hmac::Key,
    /// Keyed hashes of (user, password) pairs bcrypt has accepted.
    verified: parking_lot::Mutex<Vec<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt_gate: tokio::sync::Semaphore,
}

/// `basic_auth_users` and the hash unknown users are checked against.
struct Users {
    /// User name → bcrypt hash.
    map: BTreeMap<String, String>,
    /// A bcrypt hash of the users' cost (empty without users), made once.
    decoy: OnceLock<String>,
}

impl Users {
    fn new(map: BTreeMap<String, String>) -> Arc<Users> {
        Arc::new(Users {
            map,
            decoy: OnceLock::new(),
        })
    }

    fn decoy(&self) -> &str {
        self.decoy.get_or_init(|| decoy_hash(&self.map))
    }
}

impl Auth {
    /// The token (if any) and the users (user → bcrypt hash, checked when the web configuration
    /// was read).
    pub fn new(token: Option<String>, users: BTreeMap<String, String>) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rand::SystemRandom::new())
            // The system's random source failing is not something to run on without.
            .expect("the system random source works");
        let auth = Auth {
            token: token.map(|t| {
                let d = sha256(t.as_bytes());
                (t, d)
            }),
            users: parking_lot::RwLock::new(Users::new(users)),
            key,
            verified: parking_lot::Mutex::new(Vec::new()),
            bcrypt_gate: tokio::sync::Semaphore::new(1),
        };
        auth.users.read().decoy();
        auth
    }

    /// Replaces the users (a re-read web configuration). Nothing changes when they are the same;
    /// otherwise the remembered successes are forgotten, and the new decoy hash is made on the
    /// blocking pool.
    pub fn set_users(&self, users: BTreeMap<String, String>) {
        let next = {
            // The same lock order as `verify_user`: the remembered pairs, then the users.
            let mut verified = self.verified.lock();
            let mut current = self.users.write();
            if current.map == users {
                return;
            }
            *current = Users::new(users);
            verified.clear();
            current.clone()
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || {
                    next.decoy();
                });
            }
            Err(_) => {
                next.decoy();
            }
        }
    }

    /// No credentials at all: everything is open.
    pub fn open() -> Self {
        Auth::new(None, BTreeMap::new())
    }

    /// The `--flight.token-file` token.
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|(t, _)| t.as_str())
    }

    /// Whether `basic_auth_users` names anyone.
    pub fn has_users(&self) -> bool {
        !self.users.read().map.is_empty()
    }

    /// Whether any credential is required.
    pub fn required(&self) -> bool {
        self.token.is_some() || self.has_users()
    }

    /// Whether an `Authorization` header carries the token (`Bearer <token>`, or Basic with the
    /// token as password and any user). Constant time.
    pub fn token_matches(&self, header: &str) -> bool {
        let Some((_, want)) = &self.token else {
            return false;
        };
        let given = match parse_authorization(header) {
            Some(Credentials::Bearer(t)) => t,
            Some(Credentials::Basic(_, p)) => p,
            None => return false,
        };
        bool::from(sha256(given.as_bytes()).ct_eq(want))
    }

    /// Checks an `Authorization` header value: the token, a user's password, or a user's
    /// session token.
    pub async fn check(&self, header: Option<&str>) -> Result<Principal, Refusal> {
        if !self.required() {
            return Ok(Principal::Anonymous);
        }
        let header = header.ok_or(Refusal::Missing)?;
        if self.token_matches(header) {
            return Ok(Principal::Token);
        }
        match parse_authorization(header) {
            Some(Credentials::Basic(user, password)) if self.has_users() => {
                if self.verify_user(&user, &password).await {
                    Ok(Principal::User(user))
                } else {
                    Err(Refusal::Invalid)
                }
            }
            Some(Credentials::Bearer(t)) if self.has_users() => self
                .session_user(&t)
                .map(Principal::User)
                .ok_or(Refusal::Invalid),
            _ => Err(Refusal::Invalid),
        }
    }

    /// Whether `password` is `user`'s, by bcrypt or by a remembered success.
    pub async fn verify_user(&self, user: &str, password: &str) -> bool {
        let pair = self.pair_digest(user, password);
        if self.was_verified(&pair) {
            return true;
        }
        let Ok(_permit) = self.bcrypt_gate.acquire().await else {
            return false;
        };
        // The users as they are when this check's turn comes (not when it started waiting).
        let users = self.users.read().clone();
        let snapshot = users.clone();
        let known = users.map.contains_key(user);
        let (user, password) = (user.to_string(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            let hash = users
                .map
                .get(&user)
                .map(String::as_str)
                .unwrap_or_else(|| users.decoy());
            bcrypt::verify(password, hash)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
        // The users may have changed while bcrypt ran: remember only a pair that is still
        // current (a replaced password must not come back).
        if !(ok && known) {
            return false;
        }
        // The users changed while bcrypt ran: the answer is about a password that may no
        // longer be in force, so it is no (the client tries again).
        let mut verified = self.verified.lock();
        if !Arc::ptr_eq(&snapshot, &self.users.read()) {
            return false;
        }
        if verified.len() >= VERIFIED_CAPACITY {
            verified.remove(0);
        }
        verified.push(pair);
        true
    }

    /// A session token for `user`, valid for [`SESSION_LIFETIME`] and for as long as the user
    /// keeps the password hash they have now.
    pub fn issue_session(&self, user: &str) -> String {
        let expiry = unix_now() + SESSION_LIFETIME.as_secs();
        let body = format!("qv1.{}.{expiry}", URL_SAFE_NO_PAD.encode(user));
        let hash = self.users.read().map.get(user).cloned().unwrap_or_default();
        let tag = self.session_tag(&body, &hash);
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The MAC of a session token's body, bound to the user's password hash: a changed
    /// password ends the user's sessions.
    fn session_tag(&self, body: &str, hash: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(body.len() as u64).to_le_bytes());
        ctx.update(body.as_bytes());
        ctx.update(hash.as_bytes());
        ctx.sign()
    }

    /// The user of a valid, unexpired session token whose password has not changed since.
    fn session_user(&self, token: &str) -> Option<String> {
        let (body, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut parts = body.splitn(3, '.');
        let (Some("qv1"), Some(user), Some(expiry)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
        let hash = self.users.read().map.get(&user).cloned()?;
        let want = self.session_tag(body, &hash);
        if !bool::from(want.as_ref().ct_eq(&tag)) {
            return None;
        }
        if expiry.parse::<u64>().ok()? < unix_now() {
            return None;
        }
        Some(user)
    }

    /// The keyed hash a verified pair is remembered by (the length prefix keeps `ab`+`c` apart
    /// from `a`+`bc`).
    fn pair_digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"verified-pair");
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `pair` was verified before; compares with every entry, without stopping early.
    fn was_verified(&self, pair: &[u8; 32]) -> bool {
        let verified = self.verified.lock();
        let hit = verified
            .iter()
            .fold(subtle::Choice::from(0), |acc, v| acc | v.ct_eq(pair));
        hit.into()
    }
}

/// The hash unknown users are checked against, at the cost of the configured ones. Made at
/// startup (one bcrypt), so even the first unknown user costs what a known one does.
fn decoy_hash(users: &BTreeMap<String, String>) -> String {
    let Some(cost) = users
        .values()
        .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
    else {
        return String::new();
    };
    // A failure leaves an empty hash, which bcrypt::verify refuses like any wrong password.
    bcrypt::hash("quiver-decoy", cost).unwrap_or_default()
}

/// What an `Authorization` header carries.
enum Credentials {
    Bearer(String),
    /// User and password.
    Basic(String, String),
}

/// Parses `Bearer <token>` or `Basic <base64 of user:password>` (scheme names are
/// case-insensitive, as RFC 9110 says).
fn parse_authorization(header: &str) -> Option<Credentials> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Credentials::Bearer(rest.to_string()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = basic_credentials(rest)?;
        Some(Credentials::Basic(user, password))
    } else {
        None
    }
}

/// User and password of Basic auth's base64 `user:password`.
pub fn basic_credentials(b64: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hunter2` at bcrypt cost 4 (the lowest, so the tests stay fast).
    fn users() -> BTreeMap<String, String> {
        let hash = bcrypt::hash("hunter2", 4).unwrap();
        [("alice".to_string(), hash)].into_iter().collect()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn basic_auth_gives_user_and_password() {
        // "user:s3cret"
        assert_eq!(
            basic_credentials("dXNlcjpzM2NyZXQ="),
            Some(("user".into(), "s3cret".into()))
        );
        assert_eq!(basic_credentials("!!"), None);
    }

    #[test]
    fn the_token_matches_as_bearer_or_as_basic_password_only() {
        let auth = Auth::new(Some("s3cret".into()), BTreeMap::new());
        assert!(auth.token_matches("Bearer s3cret"));
        assert!(auth.token_matches("bearer s3cret"));
        assert!(auth.token_matches(&basic("anyone", "s3cret")));
        assert!(!auth.token_matches("Bearer s3cre"));
        assert!(!auth.token_matches("Bearer s3cret2"));
        assert!(!auth.token_matches("Token s3cret"));
        assert!(!Auth::open().token_matches("Bearer s3cret"));
    }

    #[tokio::test]
    async fn users_are_checked_by_bcrypt_and_remembered_only_on_success() {
        let auth = Auth::new(None, users());
        assert_eq!(
            auth.check(Some(&basic("alice", "hunter2"))).await,
            Ok(Principal::User("alice".into()))
        );
        assert!(auth.was_verified(&auth.pair_digest("alice", "hunter2")));
        assert_eq!(
            auth.check(Some(&basic("alice", "hunter3"))).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(
            auth.check(Some(&basic("bob", "hunter2"))).await,
            Err(Refusal::Invalid)
        );
        assert_eq!(auth.check(None).await, Err(Refusal::Missing));
        assert_eq!(auth.verified.lock().len(), 1);
        // The remembered pair still answers.
        assert!(auth.verify_user("alice", "hunter2").await);
    }

    #[tokio::test]
    async fn changed_users_forget_remembered_passwords_and_removed_users_sessions() {
        let auth = Auth::new(None, users());
        let session = auth.issue_session("alice");
        assert!(auth.verify_user("alice", "hunter2").await);
        // The same users again change nothing.
        let same = auth.users.read().map.clone();
        auth.set_users(same);
        assert_eq!(auth.verified.lock().len(), 1);
        // A new password: the old one is no longer remembered, nor accepted.
        let hash = bcrypt::hash("correct horse", 4).unwrap();
        auth.set_users([("alice".to_string(), hash)].into_iter().collect());
        assert!(auth.verified.lock().is_empty());
        assert!(!auth.verify_user("alice", "hunter2").await);
        assert!(auth.verify_user("alice", "correct horse").await);
        // The session from before the change is over; a new one works until Alice is removed.
        assert_eq!(auth.session_user(&session), None);
        let session = auth.issue_session("alice");
        assert!(auth.session_user(&session).is_some());
        let hash = bcrypt::hash("pw", 4).unwrap();
        auth.set_users([("bob".to_string(), hash)].into_iter().collect());
        assert_eq!(auth.session_user(&session), None);
        assert!(!auth.verify_user("alice", "correct horse").await);
    }

    #[tokio::test]
    async fn session_tokens_name_their_user_and_cannot_be_forged() {
        let auth = Auth::new(None, users());
        let t = auth.issue_session("alice");
        assert_eq!(
            auth.check(Some(&format!("Bearer {t}"))).await,
            Ok(Principal::User("alice".into()))
        );
        // Another process's key, or a changed user, fails the MAC.
        let other = Auth::new(None, users());
        assert_eq!(
            other.check(Some(&format!("Bearer {t}"))).await,
            Err(Refusal::Invalid)
        );
        let forged = t.replacen(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("bob"),
            1,
        );
        assert_eq!(auth.session_user(&forged), None);
        assert_eq!(auth.session_user("qv1.garbage"), None);
    }

    #[tokio::test]
    async fn nothing_configured_lets_everyone_in() {
        assert_eq!(Auth::open().check(None).await, Ok(Principal::Anonymous));
    }
}
