-- Reef IoA schema v3: the mesh's id. Nodes that share this database form one mesh; its id
-- prefixes the mesh's NATS subjects (`reef.<mesh id>.…`), so two meshes on one NATS server
-- never see each other's traffic. Written once, by the first node that needs it.
-- Must stay valid on both SQLite and Postgres.
CREATE TABLE IF NOT EXISTS ioa_mesh (
    id INTEGER PRIMARY KEY,
    mesh_id TEXT NOT NULL
);
