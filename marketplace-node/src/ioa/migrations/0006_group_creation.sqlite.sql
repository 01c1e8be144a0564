-- A group and its members in one statement: inserting a row into this view creates the group
-- and adds its members (a JSON array of addresses) inside that statement, so `create_group` is
-- one autocommitted INSERT instead of BEGIN, INSERT group, INSERT members, COMMIT. An existing
-- group id fails the whole statement, as the plain INSERT did.
CREATE VIEW IF NOT EXISTS ioa_group_creations AS
SELECT group_id, name, creator, parent_group_id, created_at, '[]' AS members FROM ioa_groups;
CREATE TRIGGER IF NOT EXISTS ioa_group_creations_insert
INSTEAD OF INSERT ON ioa_group_creations
BEGIN
    INSERT INTO ioa_groups (group_id, name, creator, parent_group_id, last_seq, created_at)
    VALUES (NEW.group_id, NEW.name, NEW.creator, NEW.parent_group_id, 0, NEW.created_at);
    INSERT INTO ioa_members (group_id, address, added_at)
    SELECT NEW.group_id, value, NEW.created_at FROM json_each(NEW.members);
END;
