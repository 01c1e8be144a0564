-- A bounty's move to another phase writes its progress-log line itself: `transition` is then one
-- autocommitted UPDATE instead of BEGIN, UPDATE, INSERT, COMMIT (still atomic: a trigger runs
-- inside its statement). Only `transition` sets `state` (one line per move, as before).
CREATE OR REPLACE FUNCTION market_transition_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO market_log (bounty_id, at_ms, event, detail)
    VALUES (NEW.id, NEW.updated_at, NEW.state, COALESCE(NEW.note, ''));
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS market_bounties_transition_log ON market_bounties;
CREATE TRIGGER market_bounties_transition_log
AFTER UPDATE OF state ON market_bounties
FOR EACH ROW EXECUTE FUNCTION market_transition_log();
