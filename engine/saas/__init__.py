"""The SaaS side: the outbound client (the one place httpx is imported), credentials and tokens,
retries and rate limits, pagination, listing, mapping items to platform resources, access checks.
May import: the shared base and engine.language; never engine.storage."""
