//! How replicas prove to each other that they hold the cluster secret
//! without ever sending it.
//!
//! Every request to a peer carries, in [`AUTH_HEADER`], an HMAC-SHA256 of
//! what it asks (method, path, the asker header, the SHA-256 of its body),
//! when (milliseconds of wall time) and a random 128-bit nonce, keyed by a
//! key derived from the secret. Every answer to such a request carries an
//! HMAC of that request's nonce, its status and the SHA-256 of its body, so
//! an answer cannot be forged, nor one answer passed off for another. A
//! listener that cannot sign is never counted, never sent a document, and
//! nothing it says is merged. A request signed more than [`MAX_SKEW_MS`]
//! from this replica's clock, or seen before (its timestamp and nonce are
//! kept until it is too old to pass), is refused: a recorded one cannot be
//! played again.
//!
//! The signature proves who sent a message; it does not hide it (peers
//! talk plain HTTP, like the control API).
//!
//! Pure: the clock and the nonce cache are handed in.

use std::collections::BTreeSet;
use std::fmt;

use ring::{digest, hmac};

/// The header that carries a request's signature, or an answer's.
pub const AUTH_HEADER: &str = "trafficgen-peer-auth";
/// How far a signed request's time may be from this replica's clock.
pub const MAX_SKEW_MS: u64 = 15_000;
/// Signed requests remembered at once (within twice [`MAX_SKEW_MS`]):
/// far above what 64 replicas send, and about 3 MiB at most. Only requests
/// whose signature is valid are remembered, so a stranger cannot fill it;
/// when full, further ones are refused until the oldest are too old.
pub const MAX_NONCES: usize = 65_536;
/// Shortest secret: a signed request lets whoever sees it test guesses of
/// the secret offline, so it must not be guessable.
pub const MIN_SECRET_CHARS: usize = 16;

const SCHEME: &str = "v1";
/// Separates the key from the secret (the secret may also be the control
/// token, which travels as a bearer token to this replica's users).
const KEY_LABEL: &[u8] = b"trafficgen cluster key v1";

/// The key replicas sign with, derived from the shared secret.
#[derive(Clone)]
pub struct ClusterKey(hmac::Key);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// What a request's signature covers, besides its [`Stamp`].
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path (and query) as sent.
    pub target: &'a str,
    /// The asker header's value (empty without one).
    pub asker: &'a str,
    pub body: &'a [u8],
}

/// When a request was signed, and its nonce: what its answer is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub at_ms: u64,
    pub nonce: u128,
}

impl Stamp {
    /// A fresh stamp for a request made now.
    pub fn now(now_ms: u64) -> Stamp {
        Stamp { at_ms: now_ms, nonce: rand::random() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no {AUTH_HEADER} header: only replicas that share the cluster secret may do this")]
    Missing,
    #[error("malformed {AUTH_HEADER} header (expected `v1 <ms> <nonce> <mac>`)")]
    Malformed,
    #[error(
        "signed {off_ms} ms away from this replica's clock (at most {MAX_SKEW_MS} ms allowed: are the clocks in sync?)"
    )]
    Skewed { off_ms: u64 },
    #[error(
        "the signature does not match: not signed with this cluster's secret (is CLUSTER_SECRET the same on every replica?)"
    )]
    BadSignature,
    #[error("this signed request was seen before: a replay")]
    Replayed,
    #[error("too many signed requests within {MAX_SKEW_MS} ms; try again")]
    Busy,
    #[error("the answer carries no valid signature: not a replica of this cluster, or its CLUSTER_SECRET differs")]
    UnsignedAnswer,
}

impl ClusterKey {
    pub fn derive(secret: &[u8]) -> ClusterKey {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&outer, KEY_LABEL);
        ClusterKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// The [`AUTH_HEADER`] value of a request.
    pub fn sign_request(&self, parts: &RequestParts, stamp: Stamp) -> String {
        let tag = hmac::sign(&self.0, &request_message(parts, stamp));
        format!("{SCHEME} {} {:032x} {}", stamp.at_ms, stamp.nonce, hex(tag.as_ref()))
    }

    /// Checks a request's signature and time; whether its nonce is new is
    /// [`Nonces::admit`]'s to say (after this, so only signed requests are
    /// remembered).
    pub fn check_request(&self, header: &[u8], parts: &RequestParts, now_ms: u64) -> Result<Stamp, AuthError> {
        let (stamp, mac) = parse_request_header(header)?;
        check_time(stamp, now_ms)?;
        hmac::verify(&self.0, &request_message(parts, stamp), &mac).map_err(|_| AuthError::BadSignature)?;
        Ok(stamp)
    }

    /// The [`AUTH_HEADER`] value of the answer to the request of `stamp`.
    pub fn sign_answer(&self, stamp: Stamp, status: u16, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &answer_message(stamp, status, body));
        format!("{SCHEME} {}", hex(tag.as_ref()))
    }

    /// Checks the answer to the request of `stamp` (its header, if any).
    pub fn check_answer(&self, header: Option<&[u8]>, stamp: Stamp, status: u16, body: &[u8]) -> Result<(), AuthError> {
        let mac = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.trim().strip_prefix(SCHEME)?.strip_prefix(' '))
            .and_then(|mac| unhex::<32>(mac.trim()))
            .ok_or(AuthError::UnsignedAnswer)?;
        hmac::verify(&self.0, &answer_message(stamp, status, body), &mac).map_err(|_| AuthError::UnsignedAnswer)
    }
}

/// The cheap checks of a request's header, before its body is read: its
/// form and its time.
pub fn precheck(header: &[u8], now_ms: u64) -> Result<Stamp, AuthError> {
    let (stamp, _) = parse_request_header(header)?;
    check_time(stamp, now_ms)?;
    Ok(stamp)
}

fn check_time(stamp: Stamp, now_ms: u64) -> Result<(), AuthError> {
    let off_ms = stamp.at_ms.abs_diff(now_ms);
    if off_ms > MAX_SKEW_MS { Err(AuthError::Skewed { off_ms }) } else { Ok(()) }
}

fn request_message(parts: &RequestParts, stamp: Stamp) -> Vec<u8> {
    let RequestParts { method, target, asker, body } = parts;
    format!(
        "trafficgen peer request {SCHEME}\n{method}\n{target}\n{asker}\n{}\n{:032x}\n{}",
        stamp.at_ms,
        stamp.nonce,
        sha256_hex(body)
    )
    .into_bytes()
}

fn answer_message(stamp: Stamp, status: u16, body: &[u8]) -> Vec<u8> {
    format!("trafficgen peer answer {SCHEME}\n{}\n{:032x}\n{status}\n{}", stamp.at_ms, stamp.nonce, sha256_hex(body))
        .into_bytes()
}

fn parse_request_header(header: &[u8]) -> Result<(Stamp, [u8; 32]), AuthError> {
    let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
    let mut parts = text.split_ascii_whitespace();
    let (Some(SCHEME), Some(at), Some(nonce), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let at_ms = at.parse::<u64>().ok().filter(|_| at.len() <= 20 && at.bytes().all(|b| b.is_ascii_digit()));
    let nonce = unhex::<16>(nonce).map(u128::from_be_bytes);
    match (at_ms, nonce, unhex::<32>(mac)) {
        (Some(at_ms), Some(nonce), Some(mac)) => Ok((Stamp { at_ms, nonce }, mac)),
        _ => Err(AuthError::Malformed),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes as `2N` hex digits (either case).
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| (d as char).to_digit(16);
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = u8::try_from(value(pair[0])? * 16 + value(pair[1])?).ok()?;
    }
    Some(out)
}

/// The signed requests seen within the time window: a request seen before
/// is a replay.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: BTreeSet<Stamp>,
}

impl Nonces {
    /// Takes a signed request's stamp in (checked by
    /// [`ClusterKey::check_request`] first); refuses one seen before.
    pub fn admit(&mut self, stamp: Stamp, now_ms: u64) -> Result<(), AuthError> {
        // Older than the window: a replay of it fails the time check.
        let horizon = now_ms.saturating_sub(MAX_SKEW_MS);
        while self.seen.first().is_some_and(|oldest| oldest.at_ms < horizon) {
            self.seen.pop_first();
        }
        if self.seen.contains(&stamp) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(AuthError::Busy);
        }
        self.seen.insert(stamp);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn parts(body: &[u8]) -> RequestParts<'_> {
        RequestParts { method: "PUT", target: "/cluster/state", asker: "00000000000000ab", body }
    }

    #[test]
    fn a_signed_request_passes_once_and_only_with_the_same_secret_and_content() {
        let key = ClusterKey::derive(b"a-secret-of-24-characters");
        let stamp = Stamp { at_ms: NOW, nonce: 0x0123_4567_89ab_cdef_0011_2233_4455_6677 };
        let header = key.sign_request(&parts(b"{}"), stamp);
        assert!(header.starts_with("v1 1800000000000 0123456789abcdef0011223344556677 "), "{header}");
        assert_eq!(header.len(), 3 + 14 + 33 + 64);
        assert!(!header.contains("a-secret"), "the secret never travels");
        assert_eq!(key.check_request(header.as_bytes(), &parts(b"{}"), NOW + 3), Ok(stamp));

        // Another secret, another body, path, method or asker: refused.
        let other = ClusterKey::derive(b"another-secret-of-24-chars");
        assert_eq!(other.check_request(header.as_bytes(), &parts(b"{}"), NOW), Err(AuthError::BadSignature));
        assert_eq!(key.check_request(header.as_bytes(), &parts(b"{ }"), NOW), Err(AuthError::BadSignature));
        for changed in [
            RequestParts { method: "GET", ..parts(b"{}") },
            RequestParts { target: "/cluster/member", ..parts(b"{}") },
            RequestParts { asker: "00000000000000ab; stopping", ..parts(b"{}") },
        ] {
            assert_eq!(key.check_request(header.as_bytes(), &changed, NOW), Err(AuthError::BadSignature));
        }
        // Its time moved: the MAC covers it.
        let moved = header.replacen("1800000000000", "1800000000001", 1);
        assert_eq!(key.check_request(moved.as_bytes(), &parts(b"{}"), NOW), Err(AuthError::BadSignature));
        // Replays: once in, refused.
        let mut nonces = Nonces::default();
        assert_eq!(nonces.admit(stamp, NOW), Ok(()));
        assert_eq!(nonces.admit(stamp, NOW + 10), Err(AuthError::Replayed));
        assert_eq!(nonces.admit(Stamp { nonce: 1, ..stamp }, NOW), Ok(()));
    }

    #[test]
    fn requests_too_far_from_the_clock_are_refused_in_both_directions() {
        let key = ClusterKey::derive(b"a-secret-of-24-characters");
        for (at_ms, ok) in [
            (NOW, true),
            (NOW - MAX_SKEW_MS, true),
            (NOW + MAX_SKEW_MS, true),
            (NOW - MAX_SKEW_MS - 1, false),
            (NOW + MAX_SKEW_MS + 1, false),
            (0, false),
            (u64::MAX, false),
        ] {
            let header = key.sign_request(&parts(b""), Stamp { at_ms, nonce: 7 });
            let checked = key.check_request(header.as_bytes(), &parts(b""), NOW);
            assert_eq!(checked.is_ok(), ok, "{at_ms}: {checked:?}");
            assert_eq!(precheck(header.as_bytes(), NOW).is_ok(), ok);
            if !ok {
                assert!(matches!(checked, Err(AuthError::Skewed { .. })), "{checked:?}");
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused_without_a_panic() {
        let key = ClusterKey::derive(b"a-secret-of-24-characters");
        let good = key.sign_request(&parts(b""), Stamp { at_ms: NOW, nonce: 7 });
        let mac = good.rsplit(' ').next().unwrap();
        for bad in [
            String::new(),
            "v1".into(),
            "Bearer a-secret-of-24-characters".into(),
            good.replacen("v1", "v2", 1),
            format!("{good} extra"),
            format!("v1 -5 {:032x} {mac}", 7),
            format!("v1 +5 {:032x} {mac}", 7),
            format!("v1 {NOW} {:031x} {mac}", 7),
            format!("v1 {NOW} {:032x} {}", 7, &mac[1..]),
            format!("v1 {NOW} {:032x} {}g", 7, &mac[1..]),
            format!("v1 99999999999999999999999 {:032x} {mac}", 7),
            "v1 1 é0000000000000000000000000000000 x".into(),
        ] {
            assert_eq!(key.check_request(bad.as_bytes(), &parts(b""), NOW), Err(AuthError::Malformed), "{bad:?}");
        }
        assert_eq!(key.check_request(&[0xff, 0xfe], &parts(b""), NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn answers_are_bound_to_their_request_status_and_body() {
        let key = ClusterKey::derive(b"a-secret-of-24-characters");
        let stamp = Stamp { at_ms: NOW, nonce: 42 };
        let header = key.sign_answer(stamp, 200, b"{\"a\":1}");
        assert_eq!(key.check_answer(Some(header.as_bytes()), stamp, 200, b"{\"a\":1}"), Ok(()));
        for (stamp, status, body) in [
            (Stamp { nonce: 43, ..stamp }, 200, &b"{\"a\":1}"[..]),
            (Stamp { at_ms: NOW + 1, ..stamp }, 200, b"{\"a\":1}"),
            (stamp, 201, b"{\"a\":1}"),
            (stamp, 200, b"{\"a\":2}"),
        ] {
            assert_eq!(key.check_answer(Some(header.as_bytes()), stamp, status, body), Err(AuthError::UnsignedAnswer));
        }
        assert_eq!(key.check_answer(None, stamp, 200, b"{\"a\":1}"), Err(AuthError::UnsignedAnswer));
        assert_eq!(key.check_answer(Some(b"v1 zz"), stamp, 200, b"{\"a\":1}"), Err(AuthError::UnsignedAnswer));
        let other = ClusterKey::derive(b"another-secret-of-24-chars");
        assert_eq!(
            other.check_answer(Some(header.as_bytes()), stamp, 200, b"{\"a\":1}"),
            Err(AuthError::UnsignedAnswer)
        );
        // A request's signature is not an answer's, nor the other way round.
        let request = key.sign_request(&parts(b""), stamp);
        assert_eq!(key.check_answer(Some(request.as_bytes()), stamp, 200, b""), Err(AuthError::UnsignedAnswer));
    }

    #[test]
    fn the_nonce_cache_forgets_what_is_too_old_to_replay_and_is_bounded() {
        let mut nonces = Nonces::default();
        for nonce in 0..100u128 {
            nonces.admit(Stamp { at_ms: NOW, nonce }, NOW).unwrap();
        }
        assert_eq!(nonces.len(), 100);
        // Past the window the old ones go (a replay of them fails the time check).
        nonces.admit(Stamp { at_ms: NOW + MAX_SKEW_MS + 1, nonce: 0 }, NOW + MAX_SKEW_MS + 1).unwrap();
        assert_eq!(nonces.len(), 1);
        let mut full = Nonces::default();
        for nonce in 0..MAX_NONCES as u128 {
            full.admit(Stamp { at_ms: NOW, nonce }, NOW).unwrap();
        }
        assert_eq!(full.admit(Stamp { at_ms: NOW, nonce: u128::MAX }, NOW), Err(AuthError::Busy));
        assert_eq!(full.admit(Stamp { at_ms: NOW, nonce: 5 }, NOW), Err(AuthError::Replayed));
        let later = NOW + MAX_SKEW_MS + 1;
        assert_eq!(full.admit(Stamp { at_ms: later, nonce: u128::MAX }, later), Ok(()), "room once they are old");
    }

    #[test]
    fn the_key_is_derived_not_the_secret_itself() {
        let secret = b"a-secret-of-24-characters";
        let derived = ClusterKey::derive(secret);
        let raw = ClusterKey(hmac::Key::new(hmac::HMAC_SHA256, secret));
        let stamp = Stamp { at_ms: NOW, nonce: 1 };
        assert_ne!(derived.sign_request(&parts(b""), stamp), raw.sign_request(&parts(b""), stamp));
        assert_eq!(format!("{derived:?}"), "ClusterKey(<redacted>)");
    }
}
