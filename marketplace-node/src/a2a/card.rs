//! A2A v1.0 agent cards: one for the node (hire the market by skills) and one per agent that
//! has connected to it (hire that agent's skills). The JSON is the protocol buffer JSON form of
//! `AgentCard` (camelCase fields, enum names as strings) that A2A 1.0 clients read from
//! `{base}/.well-known/agent-card.json`.

use serde_json::{Value, json};

use super::terms::{TERMS_URI, Terms};

/// The protocol version the cards and the JSON-RPC binding speak.
pub const PROTOCOL_VERSION: &str = "1.0";

/// The JSON-RPC binding's name in `supportedInterfaces`.
pub const BINDING_JSONRPC: &str = "JSONRPC";

/// The bearer security scheme's name (a token from `POST /v1/auth/login`).
pub const BEARER: &str = "reefBearer";

/// Input media types a task may carry: text (the description) and JSON (the task input).
pub const INPUT_MODES: [&str; 2] = ["text/plain", "application/json"];
/// The result artifact is JSON.
pub const OUTPUT_MODES: [&str; 1] = ["application/json"];

/// What a card is built from.
#[derive(Debug, Clone)]
pub struct CardInputs {
    /// Card name.
    pub name: String,
    /// Card description.
    pub description: String,
    /// Reef skills (each becomes an A2A skill).
    pub skills: Vec<String>,
    /// Icon URL.
    pub image: Option<String>,
    /// The JSON-RPC endpoint (`{base}/a2a` or `{base}/a2a/agents/{address}`).
    pub endpoint: String,
    /// The node's public base URL.
    pub base_url: String,
    /// The payment terms.
    pub terms: Terms,
}

/// One Reef skill as an A2A `AgentSkill`.
fn skill(s: &str) -> Value {
    json!({
        "id": s,
        "name": s,
        "description": format!("Work that needs the Reef skill \"{s}\": send the task as text (the description) and an optional JSON data part (the input); the verified result comes back as a JSON artifact."),
        "tags": [s, "reef"],
        "inputModes": INPUT_MODES,
        "outputModes": OUTPUT_MODES,
    })
}

/// The card's `AgentCard` JSON.
pub fn agent_card(i: &CardInputs) -> Value {
    let mut card = json!({
        "name": i.name,
        "description": i.description,
        "supportedInterfaces": [{
            "url": i.endpoint,
            "protocolBinding": BINDING_JSONRPC,
            "protocolVersion": PROTOCOL_VERSION,
        }],
        "provider": { "organization": "Reef", "url": i.base_url },
        "version": env!("CARGO_PKG_VERSION"),
        "documentationUrl": "https://github.com/reef-network/reef/blob/main/docs/a2a.md",
        "capabilities": {
            "streaming": true,
            "pushNotifications": false,
            "extendedAgentCard": false,
            "extensions": [{
                "uri": TERMS_URI,
                "description": "Reef terms: the task's budget is paid beforehand (an ERC-20 transfer to payee) and names its verification; send TaskTerms under this URI in the message metadata. The node posts the task as a bounty, awards the best sealed bid, has the result verified and pays the provider from escrow; what is not spent goes back to the caller.",
                "required": true,
                "params": i.terms,
            }],
        },
        "securitySchemes": {
            BEARER: {
                "httpAuthSecurityScheme": {
                    "description": "A Reef node token: POST /v1/auth/challenge, sign its message (EIP-191) with your key, POST /v1/auth/login; the address you log in with is the caller that pays.",
                    "scheme": "Bearer",
                }
            }
        },
        "securityRequirements": [{ "schemes": { BEARER: { "list": [] } } }],
        "defaultInputModes": INPUT_MODES,
        "defaultOutputModes": OUTPUT_MODES,
        "skills": i.skills.iter().map(|s| skill(s)).collect::<Vec<_>>(),
    });
    if let Some(img) = i.image.as_deref().filter(|s| !s.is_empty()) {
        card["iconUrl"] = Value::String(img.to_string());
    }
    card
}

/// The node's own card: any skill, chosen per task (`TaskTerms.skills`).
pub fn node_card(base_url: &str, node_id: &str, terms: Terms) -> Value {
    let mut card = agent_card(&CardInputs {
        name: format!("Reef marketplace ({node_id})"),
        description: "Hire the agents of a Reef marketplace: your task is posted as a bounty for the skills you name, the agents bid sealed, the best bid wins, the result is verified (hash or a verifier program) and paid from escrow.".into(),
        skills: Vec::new(),
        image: None,
        endpoint: format!("{base_url}/a2a"),
        base_url: base_url.to_string(),
        terms,
    });
    card["skills"] = json!([{
        "id": "reef-bounty",
        "name": "Reef bounty",
        "description": "Any work the market's agents offer: name the skills in the Reef terms (skills), describe the task as text and attach its input as a JSON data part.",
        "tags": ["reef", "bounty", "marketplace"],
        "inputModes": INPUT_MODES,
        "outputModes": OUTPUT_MODES,
    }]);
    card
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, U256};

    fn terms() -> Terms {
        Terms {
            chain_id: 31337,
            token: Address::repeat_byte(1),
            decimals: 18,
            payee: Address::repeat_byte(2),
            escrow: Address::repeat_byte(3),
            min_budget: U256::from(10),
            payment: super::super::terms::PAYMENT_ERC20_TRANSFER.into(),
            verify: vec!["hash".into()],
            verifiers: vec![],
        }
    }

    #[test]
    fn an_agent_card_maps_skills_interface_security_and_terms() {
        let c = agent_card(&CardInputs {
            name: "sorter".into(),
            description: "Sorts.".into(),
            skills: vec!["sort".into(), "math".into()],
            image: Some("https://img.example/s.png".into()),
            endpoint: "https://n.example/a2a/agents/0xab".into(),
            base_url: "https://n.example".into(),
            terms: terms(),
        });
        assert_eq!(c["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
        assert_eq!(c["supportedInterfaces"][0]["protocolVersion"], "1.0");
        assert_eq!(c["supportedInterfaces"][0]["url"], "https://n.example/a2a/agents/0xab");
        let skills: Vec<&str> =
            c["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(skills, ["sort", "math"]);
        assert_eq!(c["securitySchemes"][BEARER]["httpAuthSecurityScheme"]["scheme"], "Bearer");
        assert_eq!(c["securityRequirements"][0]["schemes"][BEARER]["list"], json!([]));
        let ext = &c["capabilities"]["extensions"][0];
        assert_eq!(ext["uri"], TERMS_URI);
        assert_eq!(ext["required"], true);
        assert_eq!(ext["params"]["minBudget"], "10");
        assert_eq!(ext["params"]["payee"], Address::repeat_byte(2).to_string());
        assert_eq!(c["iconUrl"], "https://img.example/s.png");
        assert_eq!(c["capabilities"]["streaming"], true);
    }

    #[test]
    fn the_node_card_offers_one_open_skill() {
        let c = node_card("http://127.0.0.1:1", "n1", terms());
        assert_eq!(c["supportedInterfaces"][0]["url"], "http://127.0.0.1:1/a2a");
        assert_eq!(c["skills"][0]["id"], "reef-bounty");
        assert!(c.get("iconUrl").is_none());
    }
}
