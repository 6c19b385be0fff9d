//! W3C trace context: trace and span ids, the `traceparent` header, and
//! the OpenTelemetry samplers (`OTEL_TRACES_SAMPLER`) that decide whether
//! a trace is sampled. Shared by the sidecar, which starts traces, and the
//! demo target, which continues them.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A trace id: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

impl TraceId {
    /// `None` for the invalid all-zero id.
    pub fn new(id: u128) -> Option<TraceId> {
        (id != 0).then_some(TraceId(id))
    }

    /// From random bits: an all-zero draw becomes 1.
    pub fn from_random(bits: u128) -> TraceId {
        TraceId(bits.max(1))
    }

    pub fn get(self) -> u128 {
        self.0
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(self) -> [u8; 32] {
        hex(&self.to_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).unwrap_or_default())
    }
}

/// A span id: 8 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl SpanId {
    /// `None` for the invalid all-zero id.
    pub fn new(id: u64) -> Option<SpanId> {
        (id != 0).then_some(SpanId(id))
    }

    /// From random bits: an all-zero draw becomes 1.
    pub fn from_random(bits: u64) -> SpanId {
        SpanId(bits.max(1))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// 16 lower-case hex digits.
    pub fn to_hex(self) -> [u8; 16] {
        hex(&self.to_bytes())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).unwrap_or_default())
    }
}

fn hex<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    let mut out = [0u8; M];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// The ids a rendered `traceparent` carries: the trace, the span that is
/// the parent of whatever the receiver does (for us: our client span), and
/// the sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// A `traceparent` value as the W3C Trace Context spec reads it:
    /// version `00` exactly 55 characters; a later version at least that,
    /// extra fields after a `-`; version `ff`, upper-case hex and all-zero
    /// ids are invalid. `None` for anything else (the receiver then starts
    /// a trace of its own).
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let value = value.trim_ascii();
        if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let version = lower_hex(&value[..2])?;
        match version {
            0xff => return None,
            0 if value.len() != 55 => return None,
            _ if value.len() > 55 && value[55] != b'-' => return None,
            _ => {}
        }
        let trace_id = TraceId::new(lower_hex(&value[3..35])?)?;
        let parent_id = SpanId::new(u64::try_from(lower_hex(&value[36..52])?).ok()?)?;
        let flags = lower_hex(&value[53..55])?;
        Some(TraceParent { trace_id, parent_id, sampled: flags & 1 == 1 })
    }

    /// `00-<trace id>-<parent id>-<flags>`.
    pub fn to_header(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        out[3..35].copy_from_slice(&self.trace_id.to_hex());
        out[36..52].copy_from_slice(&self.parent_id.to_hex());
        out[53..55].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        out
    }
}

/// Lower-case hex digits (at most 32) as a number.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(v))
    })
}

/// What decides a trace with no parent (a root).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// `traceidratio`: this fraction of trace ids, the same ids whoever
    /// decides (the 56 lowest bits of the id against a threshold, as the
    /// OpenTelemetry spec's consistent probability sampling does).
    TraceIdRatio(f64),
}

impl RootSampler {
    pub fn sample(self, trace_id: TraceId) -> bool {
        match self {
            RootSampler::AlwaysOn => true,
            RootSampler::AlwaysOff => false,
            RootSampler::TraceIdRatio(ratio) => {
                const RANGE: f64 = (1u64 << 56) as f64;
                let randomness = (trace_id.get() as u64) & ((1 << 56) - 1);
                // Sampled when the randomness reaches the rejection threshold.
                let threshold = ((1.0 - ratio.clamp(0.0, 1.0)) * RANGE).round();
                randomness as f64 >= threshold && ratio > 0.0
            }
        }
    }
}

/// `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub root: RootSampler,
    /// `parentbased_*`: a span with a parent follows the parent's flag.
    pub parent_based: bool,
}

/// The sampler names this program knows, for messages.
pub const SAMPLER_NAMES: &str =
    "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio";

impl Default for Sampler {
    /// The spec's default: `parentbased_always_on`.
    fn default() -> Self {
        Sampler { root: RootSampler::AlwaysOn, parent_based: true }
    }
}

impl Sampler {
    /// `name` and its argument (`None`: not given) as the SDK environment
    /// spec defines them; the ratio defaults to 1.0.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        let name = name.trim();
        let (parent_based, root) = match name.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, name),
        };
        let root = match root {
            "always_on" => RootSampler::AlwaysOn,
            "always_off" => RootSampler::AlwaysOff,
            "traceidratio" => {
                let ratio = match arg.map(str::trim) {
                    None | Some("") => 1.0,
                    Some(raw) => raw
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("OTEL_TRACES_SAMPLER_ARG={raw:?} must be a ratio from 0 to 1"))?,
                };
                RootSampler::TraceIdRatio(ratio)
            }
            "jaeger_remote" | "xray" => {
                return Err(format!("sampler '{name}' is not supported here; use one of {SAMPLER_NAMES}"));
            }
            _ => return Err(format!("unknown sampler '{name}'; use one of {SAMPLER_NAMES}")),
        };
        Ok(Sampler { root, parent_based })
    }

    /// Whether a span of `trace_id` is sampled, given its parent's flag
    /// (`None`: a root). The parent-based samplers follow a parent's flag
    /// (the spec's defaults for a remote parent); the others decide alone.
    pub fn sample(&self, parent_sampled: Option<bool>, trace_id: TraceId) -> bool {
        match parent_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.root.sample(trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_reads_as_the_w3c_spec_says() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(good).unwrap();
        assert_eq!(parsed.trace_id.get(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.parent_id.get(), 0x00f067aa0ba902b7);
        assert!(parsed.sampled);
        assert_eq!(&parsed.to_header(), good);
        assert!(!TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        // Only the lowest flag bit is "sampled".
        assert!(!TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02").unwrap().sampled);
        // A later version may carry more fields.
        assert!(TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"[..],
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn samplers_follow_the_sdk_environment_spec() {
        assert_eq!(Sampler::parse("parentbased_always_on", None), Ok(Sampler::default()));
        let off = Sampler::parse("always_off", None).unwrap();
        let id = TraceId::from_random(12345);
        assert!(!off.sample(None, id));
        assert!(!off.sample(Some(true), id), "not parent-based: decides alone");
        let parent_off = Sampler::parse("parentbased_always_off", None).unwrap();
        assert!(parent_off.sample(Some(true), id) && !parent_off.sample(None, id));
        assert_eq!(
            Sampler::parse("traceidratio", None).unwrap().root,
            RootSampler::TraceIdRatio(1.0),
            "the ratio defaults to 1"
        );
        for bad in ["1.5", "-0.1", "half", "NaN"] {
            assert!(Sampler::parse("traceidratio", Some(bad)).unwrap_err().contains("OTEL_TRACES_SAMPLER_ARG"));
        }
        assert!(Sampler::parse("jaeger_remote", None).unwrap_err().contains("not supported"));
        assert!(Sampler::parse("sometimes", None).unwrap_err().contains("always_on"));
    }

    #[test]
    fn a_ratio_samples_its_share_of_trace_ids_and_the_same_ids_each_time() {
        let sampler = Sampler::parse("traceidratio", Some("0.25")).unwrap();
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut sampled = 0;
        for _ in 0..40_000 {
            // splitmix64: a fixed, well-spread sequence.
            state = state.wrapping_add(0x9e3779b97f4a7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            let id = TraceId::from_random(u128::from(z ^ (z >> 31)) << 64 | u128::from(z));
            let decision = sampler.sample(None, id);
            assert_eq!(decision, sampler.sample(None, id));
            sampled += u32::from(decision);
        }
        assert!((9_400..=10_600).contains(&sampled), "{sampled} of 40000 at 0.25");
        let none = Sampler::parse("traceidratio", Some("0")).unwrap();
        let all = Sampler::parse("traceidratio", Some("1")).unwrap();
        for bits in [1u128, u128::MAX, 1 << 56, (1 << 56) - 1] {
            assert!(!none.sample(None, TraceId::from_random(bits)));
            assert!(all.sample(None, TraceId::from_random(bits)));
        }
    }
}
