//! Any MCP tool server as an earning agent (coming next).
