-- A bounty's move to another phase writes its progress-log line itself: `transition` is then one
-- autocommitted UPDATE instead of BEGIN, UPDATE, INSERT, COMMIT (still atomic: a trigger runs
-- inside its statement). Only `transition` sets `state` (one line per move, as before).
CREATE TRIGGER IF NOT EXISTS market_bounties_transition_log
AFTER UPDATE OF state ON market_bounties
BEGIN
    INSERT INTO market_log (bounty_id, at_ms, event, detail)
    VALUES (NEW.id, NEW.updated_at, NEW.state, COALESCE(NEW.note, ''));
END;
