-- Reef IoA schema v3: the mesh's id. Nodes that share this database form one mesh; its id
-- names the mesh's NATS request subjects (`reef.<mesh id>.<service>`), so two meshes on one
-- NATS server do not answer each other. Written once, by the first node that needs it.
-- Must stay valid on both SQLite and Postgres.
CREATE TABLE IF NOT EXISTS ioa_mesh (
    id INTEGER PRIMARY KEY,
    mesh_id TEXT NOT NULL
);
