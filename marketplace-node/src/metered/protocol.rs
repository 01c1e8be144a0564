//! Wire format of metered calls over IoA group messages (see `docs/metered.md`).
//!
//! Every message is an IoA `discussion` message whose `body` has a `kind`:
//! `metered_call` (payer → agent), `metered_result` and `metered_error` (agent → payer).
//! Amounts and ids are `U256` (JSON strings, `0x…` hex or decimal).

use alloy::primitives::{Address, Bytes, U256};
use escrow_client::bindings::channel::PaymentChannel::Voucher;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `kind` of a call.
pub const KIND_CALL: &str = "metered_call";
/// `kind` of a successful (or failed-but-charged) result.
pub const KIND_RESULT: &str = "metered_result";
/// `kind` of a refusal (nothing was served, nothing charged).
pub const KIND_ERROR: &str = "metered_error";

/// A voucher as it travels in JSON (field names as in the EIP-712 struct).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoucherJson {
    /// Channel id.
    pub channel_id: U256,
    /// Payer (channel owner and signer).
    pub payer: Address,
    /// Payee (the agent).
    pub payee: Address,
    /// Total owed on the channel so far, in the token's base units.
    pub cumulative_amount: U256,
}

impl From<&Voucher> for VoucherJson {
    fn from(v: &Voucher) -> Self {
        Self {
            channel_id: v.channelId,
            payer: v.payer,
            payee: v.payee,
            cumulative_amount: v.cumulativeAmount,
        }
    }
}

impl From<&VoucherJson> for Voucher {
    fn from(v: &VoucherJson) -> Self {
        Self {
            channelId: v.channel_id,
            payer: v.payer,
            payee: v.payee,
            cumulativeAmount: v.cumulative_amount,
        }
    }
}

/// Payer → agent: one paid call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeteredCall {
    /// Always [`KIND_CALL`].
    pub kind: String,
    /// Payer-chosen id, unique per channel; retrying with the same id and voucher is idempotent.
    pub call_id: String,
    /// The channel paying for the call (must equal `voucher.channelId`).
    pub channel_id: U256,
    /// Input handed to the agent's program.
    #[serde(default)]
    pub input: Value,
    /// The voucher covering this call (cumulative = previous + price).
    pub voucher: VoucherJson,
    /// Payer's 65-byte EIP-712 signature over `voucher`.
    pub signature: Bytes,
}

/// Agent → payer: the call was paid and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeteredResult {
    /// Always [`KIND_RESULT`].
    pub kind: String,
    /// The call answered.
    pub call_id: String,
    /// Whether the program succeeded (a failed run is still charged: the work was done).
    pub ok: bool,
    /// The program's output (JSON, or its text).
    pub result: Value,
    /// Cumulative amount the agent holds a voucher for on this channel.
    pub cumulative: U256,
}

/// Agent → payer: the call was refused; nothing was served or charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeteredErrorMsg {
    /// Always [`KIND_ERROR`].
    pub kind: String,
    /// The call refused (None when the message was too malformed to carry one).
    pub call_id: Option<String>,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// For `stale_voucher` / `wrong_amount`: the cumulative amount the agent expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<U256>,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not a well-formed `metered_call`.
    Malformed,
    /// The signature is not the voucher payer's (wrong key, chain id or contract).
    BadSignature,
    /// The voucher is not payable to this agent.
    WrongPayee,
    /// The voucher's payer is not the channel's payer or the message sender.
    WrongPayer,
    /// No such channel, or it escrows another token than the agent charges in.
    WrongChannel,
    /// The cumulative amount does not exceed what was already accepted (a replay).
    StaleVoucher,
    /// The increment is not the price (exact mode) or below it (at-least mode).
    WrongAmount,
    /// The cumulative amount exceeds the channel's deposit.
    ExceedsDeposit,
    /// The channel is closed.
    ChannelClosed,
    /// The payer requested to close and too little of the challenge period is left.
    ChannelClosing,
    /// The channel's challenge period is shorter than the agent requires.
    ChallengeTooShort,
    /// The call id was already used on this channel with a different voucher.
    CallIdReused,
    /// The agent could not check the voucher right now (chain unreachable); retry later.
    Unavailable,
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::WrongPayee => "wrong_payee",
            Self::WrongPayer => "wrong_payer",
            Self::WrongChannel => "wrong_channel",
            Self::StaleVoucher => "stale_voucher",
            Self::WrongAmount => "wrong_amount",
            Self::ExceedsDeposit => "exceeds_deposit",
            Self::ChannelClosed => "channel_closed",
            Self::ChannelClosing => "channel_closing",
            Self::ChallengeTooShort => "challenge_too_short",
            Self::CallIdReused => "call_id_reused",
            Self::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Reason code.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
    /// Expected next cumulative amount, when relevant.
    pub expected: Option<U256>,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), expected: None }
    }

    /// The wire message for `call_id`.
    pub fn to_msg(&self, call_id: Option<String>) -> MeteredErrorMsg {
        MeteredErrorMsg {
            kind: KIND_ERROR.into(),
            call_id,
            code: self.code,
            message: self.message.clone(),
            expected: self.expected,
        }
    }
}

/// Parses a `metered_call` body; `Err` carries the call id if one could be read.
pub fn parse_call(body: &Value) -> Result<MeteredCall, (Option<String>, Refusal)> {
    let call_id = body.get("call_id").and_then(Value::as_str).map(str::to_owned);
    let bad = |m: String| (call_id.clone(), Refusal::new(ErrorCode::Malformed, m));
    match &call_id {
        None => return Err(bad("missing string field call_id".into())),
        Some(id) if id.is_empty() || id.len() > 128 => {
            return Err(bad("call_id must be 1..=128 characters".into()));
        }
        Some(_) => {}
    }
    let call: MeteredCall =
        serde_json::from_value(body.clone()).map_err(|e| bad(format!("bad metered_call: {e}")))?;
    if call.kind != KIND_CALL {
        return Err(bad(format!("kind is {:?}, expected {KIND_CALL:?}", call.kind)));
    }
    if call.channel_id != call.voucher.channel_id {
        return Err(bad("channel_id differs from voucher.channelId".into()));
    }
    if call.signature.len() != 65 {
        return Err(bad(format!("signature is {} bytes, expected 65", call.signature.len())));
    }
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "kind": "metered_call", "call_id": "c1", "channel_id": "0x1", "input": [3, 1],
            "voucher": {"channelId": "1", "payer": Address::repeat_byte(1), "payee": Address::repeat_byte(2), "cumulativeAmount": "1000"},
            "signature": format!("0x{}", "11".repeat(65)),
        })
    }

    #[test]
    fn parses_hex_and_decimal_amounts() {
        let c = parse_call(&good()).unwrap();
        assert_eq!(c.channel_id, U256::from(1));
        assert_eq!(c.voucher.cumulative_amount, U256::from(1000));
    }

    #[test]
    fn malformed_calls_are_refused_with_their_id() {
        let mut b = good();
        b["signature"] = json!("0x1234");
        let (id, r) = parse_call(&b).unwrap_err();
        assert_eq!((id.as_deref(), r.code), (Some("c1"), ErrorCode::Malformed));
        let mut b = good();
        b["channel_id"] = json!("2");
        assert!(parse_call(&b).is_err());
        let mut b = good();
        b["voucher"]["cumulativeAmount"] = json!("lots");
        assert!(parse_call(&b).is_err());
        let (id, _) = parse_call(&json!({"kind": "metered_call"})).unwrap_err();
        assert!(id.is_none());
        assert!(parse_call(&json!("nope")).is_err());
    }

    #[test]
    fn error_codes_round_trip() {
        let s = serde_json::to_string(&ErrorCode::ExceedsDeposit).unwrap();
        assert_eq!(s, "\"exceeds_deposit\"");
        assert_eq!(ErrorCode::ExceedsDeposit.as_str(), "exceeds_deposit");
    }
}
