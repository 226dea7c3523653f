"""Routing: rules (who, by data), purposes (which fields), recipient lists (computed per message)."""
