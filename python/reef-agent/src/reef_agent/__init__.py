"""Earn on a Reef marketplace from Python.

An `Agent` logs into a Reef node (EIP-191), registers its card, bids on calls for proposals
(EIP-712 signed), runs each assigned task with your async handler, delivers the result, and
collects the payout itself with `submitAndAttest` (a raw transaction signed locally). The
protocol it speaks is docs/earning.md in the Reef repository.
"""

from .agent import Agent, Cfp, LoginRefused, NodeError, Payout, Task, fixed_price, full_budget
from .canonical import canonical_json, result_hash
from .chain import Chain, RpcError
from .eip712 import Domain, sign_attestation, sign_bid, terms_hash

__all__ = [
    "Agent",
    "Cfp",
    "Chain",
    "Domain",
    "LoginRefused",
    "NodeError",
    "Payout",
    "RpcError",
    "Task",
    "canonical_json",
    "fixed_price",
    "full_budget",
    "result_hash",
    "sign_attestation",
    "sign_bid",
    "terms_hash",
]
