//! ERC-20 helpers: balances, allowances, approvals, and pre-flight checks that turn a would-be
//! revert into a clear error before any gas is spent.

use alloy::primitives::{Address, U256};

use alloy::primitives::{B256, Bytes};

use crate::{
    Error, ReefClient, Result, TxOutcome, bindings::token::ReefTestToken as Erc20,
    signing::TransferWithAuthorization,
};

impl ReefClient {
    /// Balance of `who` in `token` (`Address::ZERO` = native ETH).
    pub async fn token_balance(&self, token: Address, who: Address) -> Result<U256> {
        if token.is_zero() {
            return self.eth_balance(who).await;
        }
        self.view(token, Erc20::balanceOfCall { account: who }).await
    }

    /// Allowance `owner` gave `spender` in `token`.
    pub async fn allowance(
        &self,
        token: Address,
        owner: Address,
        spender: Address,
    ) -> Result<U256> {
        self.view(token, Erc20::allowanceCall { owner, spender }).await
    }

    /// Approves `spender` for `amount` of `token` from this client's account.
    pub async fn approve(
        &self,
        token: Address,
        spender: Address,
        amount: U256,
    ) -> Result<TxOutcome> {
        self.send_call("approve", token, &Erc20::approveCall { spender, value: amount }, U256::ZERO)
            .await
    }

    /// Mints development tokens (only the ReefTestToken faucet supports this).
    pub async fn mint_test_tokens(
        &self,
        token: Address,
        to: Address,
        amount: U256,
    ) -> Result<TxOutcome> {
        self.send_call("mint", token, &Erc20::mintCall { to, amount }, U256::ZERO).await
    }

    /// Checks that this account can pay `amount` of `token` into `spender`.
    ///
    /// For ERC-20s: balance must cover `amount`; if the allowance is short and `approve` is set
    /// the allowance is raised (returning the approval transaction), otherwise
    /// [`Error::InsufficientAllowance`]. For ETH: balance must cover `amount` (gas is checked by
    /// the node).
    pub async fn ensure_can_pay(
        &self,
        token: Address,
        spender: Address,
        amount: U256,
        approve: bool,
    ) -> Result<Option<TxOutcome>> {
        let me = self.address();
        let have = self.token_balance(token, me).await?;
        if have < amount {
            return Err(Error::InsufficientBalance { token, account: me, have, need: amount });
        }
        if token.is_zero() {
            return Ok(None);
        }
        let allowed = self.allowance(token, me, spender).await?;
        if allowed >= amount {
            return Ok(None);
        }
        if !approve {
            return Err(Error::InsufficientAllowance {
                token,
                account: me,
                spender,
                have: allowed,
                need: amount,
            });
        }
        self.approve(token, spender, amount).await.map(Some)
    }

    /// Whether `authorizer` already used (or canceled) the EIP-3009 `nonce` on `token`.
    pub async fn authorization_state(
        &self,
        token: Address,
        authorizer: Address,
        nonce: B256,
    ) -> Result<bool> {
        self.view(token, Erc20::authorizationStateCall { authorizer, nonce }).await
    }

    /// Submits an EIP-3009 `transferWithAuthorization` signed by `auth.from` (this client only
    /// pays the gas: it is the x402 facilitator). A used nonce, a closed window or a bad
    /// signature revert with the token's decoded custom error.
    pub async fn transfer_with_authorization(
        &self,
        token: Address,
        auth: &TransferWithAuthorization,
        signature: Bytes,
    ) -> Result<TxOutcome> {
        let call = Erc20::transferWithAuthorization_0Call {
            from: auth.from,
            to: auth.to,
            value: auth.value,
            validAfter: auth.validAfter,
            validBefore: auth.validBefore,
            nonce: auth.nonce,
            signature,
        };
        self.send_call("transferWithAuthorization", token, &call, U256::ZERO).await
    }
}
