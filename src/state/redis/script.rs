//! The one Lua script a decision runs in Redis: `gcra::decide` on Redis's
//! own clock (`TIME`), atomic per key, so every replica sharing the Redis
//! counts as one whatever its own clock says.
//!
//! Lua's numbers are doubles, exact to 2^53: a TAT in nanoseconds since
//! 1970 is not. So the TAT is stored as text (`<seconds><9 digits of
//! nanoseconds>`) and the script works in nanoseconds *relative to now*,
//! which stay exact while a rule's burst × interval is under 2^53 ns
//! (104 days) — the same numbers as the Rust arithmetic, checked by the
//! behaviour suite. The key expires when its bucket would be full again
//! (`PX`), so Redis holds only keys that still count.

use redis::Value;

use crate::state::Verdict;

/// KEYS[1]: the bucket. ARGV: interval (ns), burst, tokens wanted (1 for
/// one request; more for a lease: as many as the bucket has, up to that).
/// Returns {allowed, remaining, reset_ns, retry_after_ns, granted}. With 1
/// wanted it is `gcra::decide` exactly.
pub const GCRA: &str = r#"
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ns = tonumber(t[2]) * 1000
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local ahead = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s = tonumber(string.sub(stored, 1, -10))
  local ns = tonumber(string.sub(stored, -9))
  ahead = (s - now_s) * 1000000000 + (ns - now_ns)
  if ahead < 0 then ahead = 0 end
end
local granted = 0
if ahead + interval <= tolerance then
  granted = math.min(tonumber(ARGV[3]), math.floor((tolerance - ahead) / interval))
end
if granted < 1 then
  return {0, 0, ahead, ahead + interval - tolerance, 0}
end
local new_ahead = ahead + interval * granted
local remaining = math.floor((tolerance - new_ahead) / interval)
local total = now_ns + new_ahead
local tat_s = now_s + math.floor(total / 1000000000)
local tat_ns = total % 1000000000
redis.call('SET', KEYS[1], string.format('%d%09d', tat_s, tat_ns), 'PX', math.ceil(new_ahead / 1000000))
return {1, remaining, new_ahead, 0, granted}
"#;

/// The script's answer: the verdict for the first token, and the tokens
/// granted (0 when refused).
pub fn verdict(v: &Value) -> Option<(Verdict, u32)> {
    let Value::Array(items) = v else {
        return None;
    };
    let n = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let verdict = Verdict {
        allowed: n(0)? == 1,
        remaining: n(1)?.clamp(0, i64::from(u32::MAX)) as u32,
        reset_ns: n(2)?.max(0) as u64,
        retry_after_ns: n(3)?.max(0) as u64,
    };
    Some((verdict, n(4)?.clamp(0, i64::from(u32::MAX)) as u32))
}
