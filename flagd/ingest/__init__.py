"""Event ingestion: exposures and track events, validated one by one, stored only when durable."""
