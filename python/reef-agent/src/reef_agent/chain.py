"""The little of Ethereum JSON-RPC an earning agent needs: read calls, and raw EIP-1559
transactions signed locally with eth-account (the key never leaves the process)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from eth_abi import decode, encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from . import http
from .eip712 import BOUNTY_TUPLE, record_tuple

SUBMIT_AND_ATTEST = f"submitAndAttest(uint256,{BOUNTY_TUPLE},bytes32,uint8,bytes)"
_ids = itertools.count(1)

#: `IBountyTypes.Status` values of `statusOf`.
STATUS = ["None", "Open", "Funded", "Awarded", "Submitted", "Completed", "Rejected",
          "Expired", "Disputed", "Resolved", "Cancelled", "Refunded"]  # fmt: skip


def selector(signature: str) -> bytes:
    """The 4-byte function selector of a Solidity signature."""
    return keccak(text=signature)[:4]


class RpcError(Exception):
    """The node refused a call (a revert during estimation included)."""


class Chain:
    """A JSON-RPC endpoint and the account that signs this agent's transactions."""

    def __init__(self, rpc: str, key: str) -> None:
        self.rpc = rpc
        self._key = key
        self.address: str = Account.from_key(key).address
        self._chain_id: int | None = None
        self._send_lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"Chain(rpc={self.rpc!r}, address={self.address})"

    async def call(self, method: str, *params: Any) -> Any:
        answer = await http.request(
            "POST",
            self.rpc,
            {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": list(params)},
        )
        if "error" in answer:
            err = answer["error"]
            raise RpcError(f"{method}: {err.get('message')} {err.get('data') or ''}".strip())
        return answer["result"]

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.call("eth_chainId"), 16)
        return self._chain_id

    async def eth_call(self, to: str, data: bytes) -> bytes:
        out = await self.call("eth_call", {"to": to, "data": "0x" + data.hex()}, "latest")
        return bytes.fromhex(out.removeprefix("0x"))

    async def token_balance(self, token: str, owner: str) -> int:
        """ERC-20 `balanceOf(owner)`; the ETH balance for the zero address."""
        if int(token, 16) == 0:
            return int(await self.call("eth_getBalance", owner, "latest"), 16)
        data = selector("balanceOf(address)") + encode(["address"], [to_checksum_address(owner)])
        return int(decode(["uint256"], await self.eth_call(token, data))[0])

    async def status_of(self, escrow: str, bounty_id: str) -> str:
        data = selector("statusOf(uint256)") + encode(["uint256"], [int(bounty_id, 16)])
        raw = await self.eth_call(escrow, data)
        return STATUS[raw[31]] if raw[31] < len(STATUS) else str(raw[31])

    async def send(self, to: str, data: bytes, timeout: float = 60.0) -> dict[str, Any]:
        """Signs and sends a transaction; waits for its receipt (raises on a revert)."""
        chain_id = await self.chain_id()
        async with self._send_lock:  # one nonce at a time
            tx: dict[str, Any] = {
                "from": self.address,
                "to": to_checksum_address(to),
                "data": "0x" + data.hex(),
                "value": "0x0",
            }
            gas = int(await self.call("eth_estimateGas", tx), 16)
            nonce = int(await self.call("eth_getTransactionCount", self.address, "pending"), 16)
            block = await self.call("eth_getBlockByNumber", "latest", False)
            base = int(block.get("baseFeePerGas") or "0x0", 16)
            tip = 1_000_000_000
            signed = Account.sign_transaction(
                {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": nonce,
                    "to": to_checksum_address(to),
                    "data": data,
                    "value": 0,
                    "gas": gas * 6 // 5 + 10_000,
                    "maxPriorityFeePerGas": tip,
                    "maxFeePerGas": 2 * base + tip,
                },
                self._key,
            )
            tx_hash = await self.call(
                "eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex()
            )
        deadline = time.monotonic() + timeout
        while True:
            receipt = await self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                if int(receipt["status"], 16) != 1:
                    raise RpcError(f"transaction {tx_hash} reverted")
                return receipt
            if time.monotonic() > deadline:
                raise RpcError(f"transaction {tx_hash} not mined within {timeout:.0f} s")
            await asyncio.sleep(0.2)

    async def submit_and_attest(
        self,
        escrow: str,
        bounty_id: str,
        record: dict[str, Any],
        result_hash: str,
        verdict: int,
        attestation: str,
    ) -> dict[str, Any]:
        """`BountyEscrow.submitAndAttest`: submit the result with the evaluator's attestation
        and be paid in the same transaction (only the provider may send it)."""
        args = encode(
            ["uint256", BOUNTY_TUPLE, "bytes32", "uint8", "bytes"],
            [
                int(bounty_id, 16),
                record_tuple(record),
                bytes.fromhex(result_hash[2:]),
                verdict,
                bytes.fromhex(attestation.removeprefix("0x")),
            ],
        )
        return await self.send(escrow, selector(SUBMIT_AND_ATTEST) + args)
