"""The BountyEscrow's EIP-712 domain and types, the record commitment (`termsHash`), and bid
and attestation signing (docs/earning.md, section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "ReefBountyEscrow"
DOMAIN_VERSION = "1"
VERDICT_ACCEPT = 1
VERDICT_REJECT = 2

#: The Solidity tuple type of `IBountyTypes.Bounty`, in field order.
BOUNTY_TUPLE = (
    "(address,address,uint128,uint128,address,address,address,uint64,uint32,uint32,uint16,"
    "uint8,uint8,bytes32,bytes32)"
)
_RECORD_FIELDS = (
    "poster", "token", "amount", "price", "provider", "evaluator", "arbiter", "deadline",
    "reviewWindow", "challengeWindow", "feeBps", "mode", "maxWinners", "specHash", "resultHash",
)  # fmt: skip

BID_TYPES = [
    {"name": "bountyId", "type": "uint256"},
    {"name": "termsHash", "type": "bytes32"},
    {"name": "bidder", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
    {"name": "eta", "type": "uint32"},
    {"name": "bond", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
]
ATTESTATION_TYPES = [
    {"name": "bountyId", "type": "uint256"},
    {"name": "provider", "type": "address"},
    {"name": "resultHash", "type": "bytes32"},
    {"name": "verdict", "type": "uint8"},
]
_DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _b32(h: str) -> bytes:
    b = bytes.fromhex(h.removeprefix("0x"))
    if len(b) != 32:
        raise ValueError(f"{h!r} is not 32 bytes of hex")
    return b


def record_tuple(record: dict[str, Any]) -> tuple[Any, ...]:
    """A JSON record (CFP `record`, amounts as decimal strings) as the ABI tuple's values."""
    missing = [f for f in _RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record lacks {', '.join(missing)}")
    out: list[Any] = []
    for f in _RECORD_FIELDS:
        v = record[f]
        if f in ("poster", "token", "provider", "evaluator", "arbiter"):
            out.append(to_checksum_address(v))
        elif f in ("specHash", "resultHash"):
            out.append(_b32(v))
        else:
            out.append(int(v))
    return tuple(out)


def terms_hash(record: dict[str, Any]) -> str:
    """`keccak256(abi.encode(record))`: what a bid's `termsHash` commits to."""
    return "0x" + keccak(encode([BOUNTY_TUPLE], [record_tuple(record)])).hex()


@dataclass(frozen=True)
class Domain:
    """The escrow's EIP-712 domain on one chain."""

    chain_id: int
    escrow: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.escrow),
        }


def _sign(
    key: str, domain: Domain, primary: str, types: list[dict[str, str]], message: dict[str, Any]
) -> str:
    data = {
        "types": {"EIP712Domain": _DOMAIN_TYPES, primary: types},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    }
    signed = Account.sign_message(encode_typed_data(full_message=data), private_key=key)
    return "0x" + bytes(signed.signature).hex()


def sign_bid(key: str, domain: Domain, bid: dict[str, Any]) -> str:
    """Signs a bid given as its JSON form (`bountyId` hex, `amount`/`nonce` decimal strings)."""
    message = {
        "bountyId": int(bid["bountyId"], 16)
        if str(bid["bountyId"]).startswith("0x")
        else int(bid["bountyId"]),
        "termsHash": _b32(bid["termsHash"]),
        "bidder": to_checksum_address(bid["bidder"]),
        "amount": int(bid["amount"]),
        "deadline": int(bid["deadline"]),
        "eta": int(bid.get("eta", 0)),
        "bond": int(bid.get("bond", 0)),
        "nonce": int(bid["nonce"]),
    }
    return _sign(key, domain, "Bid", BID_TYPES, message)


def sign_attestation(
    key: str, domain: Domain, bounty_id: str, provider: str, result_hash: str, verdict: int
) -> str:
    """An evaluator's attestation (for evaluator panels) on `provider`'s result."""
    message = {
        "bountyId": int(bounty_id, 16),
        "provider": to_checksum_address(provider),
        "resultHash": _b32(result_hash),
        "verdict": verdict,
    }
    return _sign(key, domain, "Attestation", ATTESTATION_TYPES, message)
