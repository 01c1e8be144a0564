//! ERC-8004 registration files: the JSON an agent identity's `agentURI` points to.
//!
//! `GET /v1/agents/{address}/registration.json` builds it live for an agent this node knows:
//! name and description from the agent's card, the endpoints through which it is reached on
//! this node (Reef's IoA WebSocket, the node's MCP server, the dashboard's page of the agent),
//! its payment wallet, the agent ids it owns in the AgentRegistry (from the embedded index,
//! confirmed events only) and the trust models Reef gives it. `reef agent register` points an
//! identity's `agentURI` here. Field list: ERC-8004, "Agent registration file"
//! (docs/schemas/erc8004_registration.json; docs/erc8004.md).

use alloy::primitives::{Address, U256};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    market::{Market, MarketError},
    openapi,
};

/// The registration file's `type`.
pub const REGISTRATION_TYPE: &str = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";

/// Trust models an agent on Reef has: poster ratings gated by paid work (ReputationRegistry),
/// verdicts copied into the ValidationRegistry, and stake bonds slashed on lost disputes.
pub const SUPPORTED_TRUST: [&str; 3] = ["reputation", "validation", "crypto-economic"];

/// What a registration file is built from.
#[derive(Debug, Clone)]
pub struct RegistrationInputs {
    /// The agent's address (its key, also its payment wallet).
    pub address: Address,
    /// Card name.
    pub name: String,
    /// Card description.
    pub description: String,
    /// Card skills (listed in the description's last line).
    pub skills: Vec<String>,
    /// Image URL (empty when the card has none).
    pub image: String,
    /// Whether the agent is online on the node now.
    pub online: bool,
    /// The node's public base URL (`http(s)://host[:port]`).
    pub base_url: String,
    /// The chain the identities live on.
    pub chain_id: u64,
    /// The identity registry (AgentRegistry) address.
    pub identity_registry: Address,
    /// Agent ids the address owns.
    pub agent_ids: Vec<U256>,
    /// Whether the node serves the agent's A2A card (docs/a2a.md).
    pub a2a: bool,
    /// Whether the agent sells calls paid with x402 (its card lists the `x402` verification
    /// mode: `reef agent serve-metered --x402-listen`, docs/x402.md).
    pub x402: bool,
}

/// The ERC-8004 registration file for `i`.
pub fn registration_file(i: &RegistrationInputs) -> Value {
    let ws = i.base_url.replacen("http", "ws", 1);
    let mut description = i.description.clone();
    if !i.skills.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!("Skills: {}.", i.skills.join(", ")));
    }
    let registry = format!("eip155:{}:{}", i.chain_id, i.identity_registry);
    let mut file = json!({
        "type": REGISTRATION_TYPE,
        "name": i.name,
        "description": description,
        "image": i.image,
        "services": [
            { "name": "web", "endpoint": format!("{}/#/agents/{}", i.base_url, i.address) },
            { "name": "reef", "endpoint": format!("{ws}/v1/ws"), "version": "1" },
            { "name": "MCP", "endpoint": format!("{}/mcp", i.base_url), "version": "2025-06-18" },
            { "name": "agentWallet", "endpoint": format!("eip155:{}:{}", i.chain_id, i.address) },
        ],
        "x402Support": i.x402,
        "active": i.online,
        "registrations": i.agent_ids.iter().map(|id| json!({
            "agentId": id.to_string().parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(id.to_string())),
            "agentRegistry": registry,
        })).collect::<Vec<_>>(),
        "supportedTrust": SUPPORTED_TRUST,
    });
    if i.a2a
        && let Some(services) = file["services"].as_array_mut()
    {
        services.push(json!({
            "name": "A2A",
            "endpoint": format!("{}/a2a/agents/{}/.well-known/agent-card.json", i.base_url, i.address),
            "version": crate::a2a::card::PROTOCOL_VERSION,
            "skills": i.skills,
        }));
    }
    file
}

/// The request's public base URL: `X-Forwarded-Proto` (default http) and `Host` (also the
/// base of the A2A cards' URLs).
pub(crate) fn base_url(headers: &HeaderMap) -> Result<String, MarketError> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ', '"', '\\']))
        .ok_or_else(|| MarketError::BadRequest("the request has no valid Host header".into()))?;
    let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{proto}://{host}"))
}

/// The agent a public per-agent route names (its registration file, its A2A card): the path's
/// address, parsed, and the agent as this node knows it.
pub(crate) async fn known_agent(
    node: &crate::ioa::Node,
    address: &str,
) -> Result<(Address, reef_wire::AgentInfo), MarketError> {
    let agent: Address = address
        .parse()
        .map_err(|_| MarketError::BadRequest(format!("{address:?} is not an address")))?;
    match node.get_agent(&agent).await {
        Ok(info) => Ok((agent, info)),
        Err(crate::ioa::Error::NotFound(_)) => Err(MarketError::NotFound(format!(
            "agent {agent} (it must have connected to this node once: `reef agent run`)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// An agent's ERC-8004 registration file (public): where `reef agent register` points the
/// identity's `agentURI`.
#[utoipa::path(get, path = "/v1/agents/{address}/registration.json", tag = "erc8004",
    params(("address" = String, Path, pattern = "^0x[0-9a-fA-F]{40}$", description = "The agent's address (0x + 40 hex digits)")),
    responses(
        (status = 200, description = "The ERC-8004 registration file (docs/schemas/erc8004_registration.json)", body = Object),
        (status = 400, description = "Not an address, or no Host header (bad_request)", body = openapi::ErrorBody),
        (status = 404, description = "No agent with this address on this node (not_found), or this node runs no marketplace", body = openapi::ErrorBody),
        (status = 409, description = "The node runs without its embedded indexer (conflict)", body = openapi::ErrorBody),
    ))]
async fn registration(
    State(m): State<Market>,
    Path(address): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, MarketError> {
    let base_url = base_url(&headers)?;
    let (agent, info) = known_agent(m.node(), &address).await?;
    // What the embedded indexer stored is what this node acts on (as its reputation does);
    // the node reads it once per state of the index, for lookups and discovery too.
    let by_owner = m
        .node()
        .erc8004_identities()
        .await
        .ok_or_else(|| {
            MarketError::Conflict(
                "this node runs without its embedded indexer: it cannot list the agent's ERC-8004 identities".into(),
            )
        })?
        .map_err(|e| MarketError::Internal(e.to_string()))?;
    let ids = by_owner.get(&agent).cloned().unwrap_or_default();
    let chain_id = m.deployment().chain_id;
    let x402 = info.card.verification_modes.iter().any(|m| m == "x402");
    let inputs = RegistrationInputs {
        x402,
        address: agent,
        name: info.card.name,
        description: info.card.description,
        skills: info.card.skills,
        image: info.card.image.unwrap_or_default(),
        online: info.online,
        base_url,
        chain_id,
        identity_registry: m.deployment().agent_registry,
        agent_ids: ids.into_iter().map(|i| i.agent_id).collect(),
        // The node serves A2A when the chain has the ERC-20 budgets are paid in.
        a2a: m.deployment().test_token.is_some(),
    };
    Ok(Json(registration_file(&inputs)))
}

/// The ERC-8004 routes with their OpenAPI description.
pub fn routes() -> OpenApiRouter<Market> {
    OpenApiRouter::new().routes(routes!(registration))
}

/// The ERC-8004 routes.
pub fn router(market: Market) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(market)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_lists_endpoints_wallet_registrations_and_trust() {
        let i = RegistrationInputs {
            address: Address::repeat_byte(0xab),
            name: "sorter".into(),
            description: "Sorts integers.".into(),
            skills: vec!["sort".into(), "math".into()],
            image: String::new(),
            online: true,
            base_url: "https://node.example".into(),
            chain_id: 84532,
            identity_registry: Address::repeat_byte(0x80),
            agent_ids: vec![U256::from(7), U256::MAX],
            a2a: true,
            x402: true,
        };
        let f = registration_file(&i);
        assert_eq!(f["type"], REGISTRATION_TYPE);
        assert_eq!(f["x402Support"], true);
        assert_eq!(
            registration_file(&RegistrationInputs { x402: false, ..i.clone() })["x402Support"],
            false
        );
        assert_eq!(f["description"], "Sorts integers.\n\nSkills: sort, math.");
        let services = f["services"].as_array().unwrap();
        let endpoint =
            |n: &str| services.iter().find(|s| s["name"] == n).unwrap()["endpoint"].clone();
        assert_eq!(endpoint("reef"), "wss://node.example/v1/ws");
        assert_eq!(endpoint("MCP"), "https://node.example/mcp");
        assert_eq!(endpoint("agentWallet"), format!("eip155:84532:{}", i.address));
        assert_eq!(
            endpoint("A2A"),
            format!("https://node.example/a2a/agents/{}/.well-known/agent-card.json", i.address)
        );
        let regs = f["registrations"].as_array().unwrap();
        assert_eq!(regs[0]["agentId"], 7);
        // An id beyond u64 stays exact, as a decimal string.
        assert_eq!(regs[1]["agentId"], U256::MAX.to_string());
        assert_eq!(regs[0]["agentRegistry"], format!("eip155:84532:{}", i.identity_registry));
        assert_eq!(f["supportedTrust"], json!(["reputation", "validation", "crypto-economic"]));
    }

    #[test]
    fn the_base_url_comes_from_host_and_forwarded_proto() {
        let mut h = HeaderMap::new();
        assert!(base_url(&h).is_err());
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(base_url(&h).unwrap(), "http://127.0.0.1:8080");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(base_url(&h).unwrap(), "https://127.0.0.1:8080");
        h.insert("host", "evil.example/path".parse().unwrap());
        assert!(base_url(&h).is_err());
    }
}
