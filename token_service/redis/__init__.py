"""Redis adapters shared by the service and the audit worker: connection, store, records,
the functions library and its Lua, consumer groups, dead letters and ACL rendering."""
