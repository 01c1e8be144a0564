//! permessage-deflate (RFC 7692) for the agents' WebSocket: the node's settings and the
//! negotiation of one upgrade's `Sec-WebSocket-Extensions` offers.
//!
//! The node answers the offers itself (rather than leaving it to the WebSocket library) so that
//! the answer follows RFC 7692 to the letter — `client_max_window_bits` only when the client
//! offered it, offers with unknown or repeated parameters declined — and so that the window the
//! node compresses with never exceeds its own bound, whatever the client asks for.

use std::fmt;
use std::str::FromStr;

/// Smallest window the node agrees to: zlib cannot compress with a 256-byte window (8 bits).
pub const MIN_WINDOW_BITS: u8 = 9;
/// Largest window RFC 7692 allows (32 KiB).
pub const MAX_WINDOW_BITS: u8 = 15;

/// The node's permessage-deflate settings (`reef node --ws-compression …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsCompression {
    /// Whether the node accepts the extension at all (`--ws-compression off`: never).
    pub enabled: bool,
    /// Largest LZ77 window, in bits ([`MIN_WINDOW_BITS`]..=[`MAX_WINDOW_BITS`]), the node
    /// compresses with and, when the client lets it choose, the client may compress with.
    pub window_bits: u8,
    /// Keep each direction's dictionary from one message to the next (better ratio on small,
    /// similar JSON frames; the state then lives as long as the connection). Off: both sides
    /// are told `no_context_takeover` and the node borrows compressor state per message.
    pub context_takeover: bool,
    /// deflate level, 0 (store) to 9 (smallest).
    pub level: u32,
}

impl Default for WsCompression {
    fn default() -> Self {
        Self { enabled: true, window_bits: 12, context_takeover: true, level: 6 }
    }
}

impl WsCompression {
    /// Compression switched off: the node never negotiates the extension.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// Check the bounds of the settings.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&self.window_bits) {
            return Err(format!(
                "--ws-window-bits must be within {MIN_WINDOW_BITS}..={MAX_WINDOW_BITS}, not {}",
                self.window_bits
            ));
        }
        if self.level > 9 {
            return Err(format!("--ws-compression-level must be within 0..=9, not {}", self.level));
        }
        Ok(())
    }
}

/// `--ws-compression`: `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Negotiate permessage-deflate with clients that offer it.
    On,
    /// Never negotiate it.
    Off,
}

impl FromStr for Switch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Ok(Self::On),
            "off" | "false" | "no" => Ok(Self::Off),
            other => Err(format!("expected on or off, not `{other}`")),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// What the node agreed to for one connection: the `Sec-WebSocket-Extensions` value of its
/// 101 answer ([`fmt::Display`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The window the node compresses with (always sent as `server_max_window_bits`).
    pub server_window_bits: u8,
    /// The window the client must compress with, when the client offered
    /// `client_max_window_bits` (else the client may use 32 KiB and the node inflates with that).
    pub client_window_bits: Option<u8>,
    /// The node resets its dictionary after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its dictionary after each message.
    pub client_no_context_takeover: bool,
}

impl fmt::Display for Agreed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permessage-deflate; server_max_window_bits={}", self.server_window_bits)?;
        if let Some(bits) = self.client_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        Ok(())
    }
}

/// One permessage-deflate offer's parameters.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value (the server picks).
    client_max_window_bits: Option<Option<u8>>,
}

fn window_bits(value: Option<&str>) -> Option<u8> {
    let v = value?;
    // A value is a token or a quoted string (RFC 6455 §9.1); digits only, no leading zero.
    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = v.parse().ok()?;
    (8..=MAX_WINDOW_BITS).contains(&bits).then_some(bits)
}

/// Parse one extension of an offer list (`name; p1; p2=v`); `None` if it is not a
/// well-formed permessage-deflate offer (another extension, an unknown or repeated
/// parameter, a bad value): RFC 7692 §7.1 has the server decline such an offer.
fn parse_offer(ext: &str) -> Option<Offer> {
    let mut parts = ext.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut offer = Offer::default();
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        if param.is_empty() {
            return None;
        }
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (param.to_ascii_lowercase(), None),
        };
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_max_window_bits", v) => offer.server_max_window_bits = Some(window_bits(v)?),
            ("client_max_window_bits", None) => offer.client_max_window_bits = Some(None),
            ("client_max_window_bits", v) => {
                offer.client_max_window_bits = Some(Some(window_bits(v)?))
            }
            _ => return None,
        }
        seen.push(name);
    }
    Some(offer)
}

/// Answer a client's `Sec-WebSocket-Extensions` headers (each a comma-separated list, in
/// the client's order of preference): the first acceptable permessage-deflate offer is
/// agreed to within the node's bounds; `None` (no extension, plain frames) when the node has
/// compression off or no offer is acceptable.
pub fn negotiate<'a>(
    cfg: &WsCompression,
    headers: impl IntoIterator<Item = &'a str>,
) -> Option<Agreed> {
    if !cfg.enabled {
        return None;
    }
    let bound = cfg.window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    for header in headers {
        for ext in split_list(header) {
            let Some(offer) = parse_offer(ext) else { continue };
            // The client wants the node's window at most this size: below what zlib can do,
            // decline this offer and look at the next.
            let server_window_bits = match offer.server_max_window_bits {
                Some(b) if b < MIN_WINDOW_BITS => continue,
                Some(b) => b.min(bound),
                None => bound,
            };
            let client_window_bits = offer
                .client_max_window_bits
                .map(|v| v.unwrap_or(MAX_WINDOW_BITS).clamp(MIN_WINDOW_BITS, bound));
            return Some(Agreed {
                server_window_bits,
                client_window_bits,
                server_no_context_takeover: offer.server_no_context_takeover
                    || !cfg.context_takeover,
                client_no_context_takeover: offer.client_no_context_takeover
                    || !cfg.context_takeover,
            });
        }
    }
    None
}

/// Split an extension list on the commas that are not inside a quoted string.
fn split_list(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in header.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(header[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(header[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bits: u8) -> WsCompression {
        WsCompression { window_bits: bits, ..WsCompression::default() }
    }

    #[test]
    fn a_plain_offer_gets_the_nodes_window() {
        let a = negotiate(&cfg(12), ["permessage-deflate"]).unwrap();
        assert_eq!(a.to_string(), "permessage-deflate; server_max_window_bits=12");
    }

    #[test]
    fn client_window_is_answered_only_when_offered() {
        let a = negotiate(&cfg(12), ["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(a.client_window_bits, Some(12));
        let a = negotiate(&cfg(12), ["permessage-deflate; client_max_window_bits=10"]).unwrap();
        assert_eq!(a.client_window_bits, Some(10));
        let a = negotiate(&cfg(12), ["permessage-deflate; client_max_window_bits=15"]).unwrap();
        assert_eq!(a.client_window_bits, Some(12));
        let a = negotiate(&cfg(12), ["permessage-deflate"]).unwrap();
        assert_eq!(a.client_window_bits, None);
    }

    #[test]
    fn server_window_is_the_smaller_of_both_bounds() {
        let a = negotiate(&cfg(12), ["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(a.server_window_bits, 10);
        let a = negotiate(&cfg(12), ["permessage-deflate; server_max_window_bits=\"15\""]).unwrap();
        assert_eq!(a.server_window_bits, 12);
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(negotiate(&cfg(12), [bad]), None, "{bad}");
            let both = format!("{bad}, permessage-deflate; client_max_window_bits");
            let a = negotiate(&cfg(12), [both.as_str()]).expect(bad);
            assert_eq!(a.client_window_bits, Some(12), "{bad}");
        }
    }

    #[test]
    fn context_takeover_off_is_imposed_on_both_sides() {
        let c = WsCompression { context_takeover: false, ..cfg(11) };
        let a = negotiate(&c, ["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(
            a.to_string(),
            "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11; \
             server_no_context_takeover; client_no_context_takeover"
        );
        let a = negotiate(&cfg(11), ["permessage-deflate; server_no_context_takeover"]).unwrap();
        assert!(a.server_no_context_takeover && !a.client_no_context_takeover);
    }

    #[test]
    fn off_never_negotiates() {
        assert_eq!(negotiate(&WsCompression::off(), ["permessage-deflate"]), None);
        assert_eq!(negotiate(&cfg(12), std::iter::empty()), None);
    }

    #[test]
    fn settings_are_bounded() {
        assert!(cfg(8).validate().is_err());
        assert!(cfg(16).validate().is_err());
        assert!(cfg(9).validate().is_ok());
        assert!(WsCompression { level: 10, ..cfg(12) }.validate().is_err());
        assert_eq!("OFF".parse::<Switch>(), Ok(Switch::Off));
        assert!("maybe".parse::<Switch>().is_err());
    }
}
