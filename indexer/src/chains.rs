//! Safe defaults per chain: how many blocks deep a fact must be before money and reputation act
//! on it (confirmations), and how many recent block headers are kept and checked for reorgs
//! (the reorg window). Both can be overridden (`reef indexer run --confirmations`,
//! `--reorg-window`); these are what a chain gets when nobody says otherwise.

/// The defaults of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChainProfile {
    /// A name for logs and `--help`.
    pub name: &'static str,
    /// Blocks below the head a fact must be.
    pub confirmations: u64,
    /// Recent headers checked for reorgs (at least `confirmations`).
    pub reorg_window: u64,
}

/// The defaults for `chain_id`. Local devnets need no confirmations; Ethereum and its testnets
/// 12 (about 2.5 min, past the usual one- or two-block reorgs); OP-stack and Arbitrum chains,
/// whose sequencers rarely reorg their unsafe head, 10 blocks (about 20 s); Polygon PoS, which
/// has reorged dozens of blocks, 64. Any other chain gets Ethereum's defaults.
pub fn profile(chain_id: u64) -> ChainProfile {
    let p = |name, confirmations, reorg_window| ChainProfile { name, confirmations, reorg_window };
    match chain_id {
        31337 | 1337 => p("local devnet", 0, 64),
        1 => p("Ethereum", 12, 128),
        11155111 | 17000 | 560048 => p("Ethereum testnet", 12, 128),
        10 | 8453 | 84532 | 11155420 => p("OP stack", 10, 128),
        42161 | 421614 | 42170 => p("Arbitrum", 10, 128),
        137 | 80002 => p("Polygon PoS", 64, 256),
        _ => p("other chain", 12, 128),
    }
}

#[cfg(test)]
mod tests {
    use super::profile;

    #[test]
    fn every_profile_checks_at_least_as_deep_as_it_confirms() {
        for id in [31337, 1337, 1, 11155111, 10, 8453, 84532, 42161, 137, 80002, 999_999] {
            let p = profile(id);
            assert!(p.reorg_window >= p.confirmations, "{id}: {p:?}");
        }
        assert_eq!(profile(31337).confirmations, 0);
        assert_eq!(profile(999_999).confirmations, 12, "unknown chains get the safe default");
        assert!(profile(137).confirmations > profile(1).confirmations);
    }
}
