-- A group's counter follows its messages: storing messages moves `last_seq` to the highest new
-- seq of each group (once per statement, from its transition table). The group-commit writer
-- then appends a whole batch in one statement (numbering, membership and duplicates checked
-- inside it, the counters locked FOR UPDATE) instead of BEGIN, lock, member read, INSERT,
-- counter UPDATE, COMMIT; a trigger runs inside its statement, so counters and rows stay atomic.
CREATE OR REPLACE FUNCTION ioa_messages_last_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ioa_groups g SET last_seq = n.top
    FROM (SELECT group_id, MAX(seq) AS top FROM stored GROUP BY group_id) n
    WHERE g.group_id = n.group_id AND g.last_seq < n.top;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS ioa_messages_last_seq ON ioa_messages;
CREATE TRIGGER ioa_messages_last_seq
AFTER INSERT ON ioa_messages
REFERENCING NEW TABLE AS stored
FOR EACH STATEMENT EXECUTE FUNCTION ioa_messages_last_seq();
