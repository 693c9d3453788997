"""kopf handlers, one module per resource: parse the object, call one service, write status."""
