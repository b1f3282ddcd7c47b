"""What every actor shares, whatever its role: the node lifecycle (connect, announce,
heartbeat, stop cleanly), the Bus built from Settings, and the resource monitor. The
nodes and the coordinator build on it; the CLI tools use only `connect`."""
