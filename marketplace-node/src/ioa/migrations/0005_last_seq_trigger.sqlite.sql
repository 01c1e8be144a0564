-- A group's counter follows its messages: storing a message moves `last_seq` to its seq. The
-- group-commit writer then appends a whole batch in one statement (numbering, membership and
-- duplicates checked inside it) instead of BEGIN, lock, member read, INSERT, counter UPDATE,
-- COMMIT; a trigger runs inside its statement, so the counter and the rows stay atomic.
CREATE TRIGGER IF NOT EXISTS ioa_messages_last_seq
AFTER INSERT ON ioa_messages
BEGIN
    UPDATE ioa_groups SET last_seq = NEW.seq
    WHERE group_id = NEW.group_id AND last_seq < NEW.seq;
END;
