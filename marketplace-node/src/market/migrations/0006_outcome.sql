-- Ranking a window counts its bidders' past verdicts. The verdict column carries the whole
-- result (up to a message's size), so counting no longer reads it: each bounty keeps its
-- outcome beside it (1 accepted, 0 rejected, NULL none yet or still with the evaluators), and
-- the count is an index-only read of (winner, outcome).
ALTER TABLE market_bounties ADD COLUMN outcome BIGINT;
-- Verdicts are stored with sorted keys, so "accept" comes first when there is one.
UPDATE market_bounties SET outcome = 1 WHERE verdict LIKE '{"accept":true%';
UPDATE market_bounties SET outcome = 0 WHERE verdict LIKE '{"accept":false%';
DROP INDEX IF EXISTS market_bounties_winner;
CREATE INDEX IF NOT EXISTS market_bounties_winner_outcome ON market_bounties (winner, outcome);
